"""Question-answering prediction: raw questions and contexts to answers (:class:`QuestionAnswerer`), and the model a
recipe trains (:func:`load_qa_model`). The recipe's prediction files are written by ``data.write_predictions``.

Decoding (:func:`best_spans`, :func:`postprocess_predictions`: the exact n-best search over every window and the
merge into answers of the original context) lives in ``modeling/qa_spans.py``, which ships next to the weights for
the Inference Endpoints handler; it is imported here under the same names.

Prediction (:class:`QuestionAnswerer`, :func:`answer_questions`) checks its input as every door does
(``modeling/texts.py``): a ``str`` is one question (or context), other types raise ``TypeError`` naming the argument,
a lone surrogate ``ValueError``; an empty or blank question or context (no token) is refused, as the data reader
refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..files import load_tokenizer
from ..modeling.qa_spans import postprocess_predictions
from ..modeling.texts import check_texts, texts_without_tokens
from .inputs import prepare_eval_features

# The settings a trained model keeps in its config, so that answer_questions windows and decodes as training did.
DEFAULT_SETTINGS = {
    "max_seq_length": 384,
    "doc_stride": 128,
    "max_question_length": 64,
    "n_best_size": 20,
    "max_answer_length": 30,
    "version_2_with_negative": False,
    "null_score_diff_threshold": 0.0,
}
SAVED_SETTINGS = tuple(DEFAULT_SETTINGS)  # all of them are stored in a trained model's config.json
# ---------------------------------------------------------------------------------------------------------------
# Inference


class QuestionAnswerer:
    """Answer questions from contexts of any length with an extractive QA model and its (fast) tokenizer.

    Windowing and decoding settings (``max_seq_length``, ``doc_stride``, ``max_question_length``, ``n_best_size``,
    ``max_answer_length``, ``version_2_with_negative``, ``null_score_diff_threshold``) default to what the model's
    config records (``recipes/qa.py`` saves them there), else :data:`DEFAULT_SETTINGS`; keyword arguments override
    them. Calling returns ``{"answer", "start", "end", "score"}`` per question, with ``answer ==
    context[start:end]`` (``""``, ``None``, ``None`` when a 2.0-style model abstains) and ``score`` the answer's
    n-best probability.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 16, **settings):
        unknown = set(settings) - set(DEFAULT_SETTINGS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.settings = {key: settings.get(key, getattr(model.config, key, default))
                         for key, default in DEFAULT_SETTINGS.items()}

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None,
                        dtype=None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (keyword arguments as for the constructor); ``dtype``
        (e.g. ``torch.bfloat16`` or ``"bfloat16"``) is the model's, the answer scores are computed in float32."""
        from ..predictor.auto import load_model

        model = load_model("qa", path, revision, dtype)  # names another kind of model, a damaged file
        tokenizer = load_tokenizer(str(path), revision=revision)  # names missing files
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def __call__(self, questions: str | Sequence[str], contexts: str | Sequence[str]) -> dict | list[dict]:
        """The answer to one question from one context, or a list of answers for lists of questions and contexts."""
        questions, single = check_texts(questions, "questions", "question")
        contexts, single_context = check_texts(contexts, "contexts", "context")
        if single != single_context:
            raise TypeError("pass one question and one context (two str), or a list of each")
        predicted = self.predict(questions, contexts)
        answers = [{key: predicted[str(i)][key] for key in ("answer", "start", "end", "score")}
                   for i in range(len(questions))]
        return answers[0] if single else answers

    def predict(self, questions: Sequence[str], contexts: Sequence[str]) -> dict[str, dict]:
        """:func:`postprocess_predictions` of the questions, keyed by their position (``"0"``, ``"1"``, ...)."""
        import torch

        questions, _ = check_texts(questions, "questions", "question")
        contexts, _ = check_texts(contexts, "contexts", "context")
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        # Refused as the data reader refuses them: there is nothing to ask, or nothing to answer from.
        for name, texts in (("question", questions), ("context", contexts)):
            for i in texts_without_tokens(self.tokenizer, texts):
                raise ValueError(f"{name} {i} is empty (no token: blank, or only characters the tokenizer deletes)")
        options, tokenizer, model = self.settings, self.tokenizer, self.model
        examples = {"id": [str(i) for i in range(len(questions))], "question": list(questions),
                    "context": list(contexts), "answers": [{"text": [], "answer_start": []}] * len(questions)}
        features = prepare_eval_features(examples, tokenizer, options["max_seq_length"], options["doc_stride"],
                                         options["max_question_length"], with_labels=False)
        model_inputs = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in features]
        width = max(len(ids) for ids in features["input_ids"])
        start_logits = np.full((len(features["input_ids"]), width), -1e4, dtype=np.float32)
        end_logits = start_logits.copy()
        with torch.no_grad():
            for begin in range(0, len(features["input_ids"]), self.batch_size):
                batch = tokenizer.pad({key: features[key][begin:begin + self.batch_size] for key in model_inputs},
                                      return_tensors="pt")
                output = model(**{key: value.to(model.device) for key, value in batch.items()})
                length = output.start_logits.shape[1]
                start_logits[begin:begin + self.batch_size, :length] = output.start_logits.float().cpu().numpy()
                end_logits[begin:begin + self.batch_size, :length] = output.end_logits.float().cpu().numpy()
        return postprocess_predictions(
            examples, features, start_logits, end_logits, options["n_best_size"], options["max_answer_length"],
            options["version_2_with_negative"], options["null_score_diff_threshold"],
        )


def answer_questions(
    model_or_path,
    questions: str | Sequence[str],
    contexts: str | Sequence[str],
    tokenizer=None,
    batch_size: int = 16,
    device: str | None = None,
    **settings,
) -> list[dict]:
    """:class:`QuestionAnswerer` in one call: ``model_or_path`` is a folder or Hub id, or a loaded model (then pass
    ``tokenizer``); the answers of the questions, one dict each (one dict for one ``str`` question and context)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        answerer = QuestionAnswerer.from_pretrained(str(model_or_path), device=device, batch_size=batch_size,
                                                    **settings)
    else:
        if tokenizer is None:
            raise ValueError("pass the tokenizer with a loaded model")
        if device is not None:
            model_or_path.to(device)
        answerer = QuestionAnswerer(model_or_path, tokenizer, batch_size=batch_size, **settings)
    return answerer(questions, contexts)


def load_qa_model(model_name_or_path: str, settings: dict, revision: str | None = None):
    """The model ``recipes/qa.py`` trains: ``AutoModelForQuestionAnswering`` (a new span layer on an encoder, or a
    trained QA model as it is) with ``settings`` (the keys of :data:`DEFAULT_SETTINGS`) in its config, saved with it,
    so that :class:`QuestionAnswerer` windows and decodes as training did."""
    from transformers import AutoModelForQuestionAnswering

    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
    model = AutoModelForQuestionAnswering.from_pretrained(model_name_or_path, revision=revision)
    model.config.update(settings)
    return model
