"""The predictor a model asks for, like transformers' Auto classes: the task from the model's ``config.json``
(:func:`task_of`), then that task's predictor class (:func:`predictor_class`), each with the same
``from_pretrained(path, revision=...)``. The command line (``python -m hf_bert_tasks.predictor``) and the demo Space
choose by this one rule.
"""

from __future__ import annotations

TASKS = ("ner", "classification", "qa")


def task_of(config) -> str:
    """``"ner"``, ``"classification"`` or ``"qa"`` from a config's ``architectures`` (or its CRF model type)."""
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) == "bert_crf" or "TokenClassification" in architectures:
        return "ner"
    if "SequenceClassification" in architectures:
        return "classification"
    if "QuestionAnswering" in architectures:
        return "qa"
    raise ValueError(f"cannot tell the task of a model with architectures {architectures or 'none'!r} "
                     f"(model_type {getattr(config, 'model_type', None)!r}); expected a token classifier, a "
                     "sequence classifier or a question-answering model")


def predictor_class(task: str) -> type:
    """The predictor of ``task``: ``NerPredictor``, ``TextClassifier`` or ``QuestionAnswerer`` (imported on demand:
    each task pulls only its own modules)."""
    if task == "ner":
        from ..ner.predictor import NerPredictor

        return NerPredictor
    if task == "classification":
        from ..classification.predictor import TextClassifier

        return TextClassifier
    if task == "qa":
        from ..qa.predictor import QuestionAnswerer

        return QuestionAnswerer
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
