"""The Inference Endpoints custom handler that ships with every trained model (NER, classification, QA, distilled
students): `handler.py` next to the weights, with `texts.py` (the shared input checks) and a `requirements.txt`.

Inference Endpoints load it as a file of its own (not as part of a package), build `EndpointHandler(path)` once and
call it with each request's JSON body:

```python
handler = EndpointHandler("path/to/model")
handler({"inputs": "Angela Weber flew from Dublin to Toronto."})                  # NER: entities
handler({"inputs": ["great match", "the bank said"], "parameters": {"top_k": 2}})  # classification: labels, scores
handler({"inputs": {"question": "Who flew?", "context": "Angela Weber flew."}})    # QA: the answer and its span
```

What it returns is what the model's `pipeline(task, model=path, trust_remote_code=True)` returns for the same
inputs (QA: what the package's predictor returns), batched inputs included (a list in, a list out);
`data["parameters"]` are passed to the pipeline call (`batch_size`, `top_k`, `aggregation_strategy`, ...). The task
comes from `config.json`:

- **token-classification** (the CRF model, a softmax head): `inputs` a text or a list of texts. Entities
  (`entity_group`, `score`, `word`, `start`, `end`): `aggregation_strategy` defaults to `"simple"`, as in the Hub's
  own widget; the CRF pipeline tags text of any length in the windows the model was trained on.
- **text-classification**: `inputs` a text, a `{"text", "text_pair"}` pair, or a list of either. Long texts are cut
  at the model's `max_seq_length` (the pipeline's truncation; the `windows` and `head_tail` readings of
  `hf_bert_tasks.classification.predictor.TextClassifier` need the package). A text without tokens (empty, blank,
  or only characters the tokenizer deletes) gets `None`, as in `TextClassifier`, where the model would classify an
  empty input with confidence.
- **question-answering**: `inputs` a `{"question", "context"}` dict or a list of them. transformers 5 has no
  question-answering pipeline: the answers are those of `hf_bert_tasks.qa.predictor.answer_questions`
  (`{"answer", "start", "end", "score"}`), from the windows the model was trained with (`max_seq_length`,
  `doc_stride` of its config) decoded by the package's own exact n-best search (`qa_spans.py`, shipped beside this
  file). `parameters` may override the config's `max_seq_length`, `doc_stride`, `max_question_length`,
  `n_best_size`, `max_answer_length`, `version_2_with_negative`, `null_score_diff_threshold`, and `batch_size`
  (windows per forward pass). An empty or blank question or context is refused, and so is a question longer than
  `max_question_length` tokens (the package's predictor would cut it).

Torch's threads: the endpoint variable `THREADS` (a whole number of at least 1), else the usable cores divided
among the server's worker processes, `WEB_CONCURRENCY` (uvicorn's and gunicorn's variable; unset: one worker, torch's
default threads), so that workers do not spin against each other on the same cores (`threads.py`).

Bad `inputs` raise `TypeError` or `ValueError` with a sentence that names the field, the position in a batch and
what was expected (the checks of `texts.py`, the rules every door of `hf_bert_tasks` shares).

Like the model's custom code it imports only torch, transformers and the standard library, and its siblings
`texts.py`, `qa_spans.py` and `threads.py` by path (the file is loaded on its own, so a relative import has no
package to be relative to).
"""

import importlib.util
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, pipeline


def _load_sibling(name: str):
    """The module `name.py` next to this file."""
    spec = importlib.util.spec_from_file_location(f"endpoint_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


texts = _load_sibling("texts")
qa_spans = _load_sibling("qa_spans")
threads = _load_sibling("threads")

# Architecture suffix -> pipeline task.
PIPELINE_TASKS = {"ForTokenClassification": "token-classification",
                  "ForSequenceClassification": "text-classification",
                  "ForQuestionAnswering": "question-answering"}
# What recipes/qa.py records in a QA model's config (hf_bert_tasks.qa.predictor.DEFAULT_SETTINGS).
QA_SETTINGS = {"max_seq_length": 384, "doc_stride": 128, "max_question_length": 64, "n_best_size": 20,
               "max_answer_length": 30, "version_2_with_negative": False, "null_score_diff_threshold": 0.0}


def _named_items(inputs, single: tuple[type, ...], expected: str) -> list[tuple[str, object]]:
    """`[("inputs", inputs)]` for one input (an instance of `single`), `[("inputs[i]", item), ...]` for a list;
    `TypeError` saying what was `expected` otherwise."""
    if isinstance(inputs, single):
        return [("inputs", inputs)]
    if not isinstance(inputs, list):
        raise TypeError(f"inputs must be {expected}, got {type(inputs).__name__}")
    return [(f"inputs[{i}]", item) for i, item in enumerate(inputs)]


def pipeline_task(config) -> str:
    """The pipeline task of a saved model's config, from its `architectures`."""
    for architecture in getattr(config, "architectures", None) or []:
        for suffix, task in PIPELINE_TASKS.items():
            if architecture.endswith(suffix):
                return task
    raise ValueError(f"no endpoint task for a model with architectures {config.architectures!r}: expected a token "
                     "classifier, a sequence classifier or a question-answering model")


def pipeline_defaults(task: str, config, tokenizer) -> dict:
    """Parameters that make the endpoint read text as the model was trained (a request may override them)."""
    if task == "token-classification":
        return {"aggregation_strategy": "simple"}
    if task == "text-classification":
        max_length = getattr(config, "max_seq_length", None) or min(tokenizer.model_max_length,
                                                                   config.max_position_embeddings)
        return {"truncation": True, "max_length": max_length}
    settings = {key: getattr(config, key, default) for key, default in QA_SETTINGS.items()}
    return {**settings, "batch_size": 16}


class EndpointHandler:
    """`EndpointHandler(path)(data)`: the pipeline of the model in `path` behind the Inference Endpoints contract."""

    def __init__(self, path: str = ""):
        path = path or "."
        workers = threads.whole_number_variable("WEB_CONCURRENCY", "the endpoint") or 1
        self.threads = threads.share_threads(threads.whole_number_variable("THREADS", "the endpoint"), workers=workers)
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        self.task = pipeline_task(config)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        if self.task == "question-answering":  # transformers 5 has no question-answering pipeline
            self.model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
        else:
            self.pipeline = pipeline(self.task, model=path, tokenizer=self.tokenizer, trust_remote_code=True)
        self.defaults = pipeline_defaults(self.task, config, self.tokenizer)

    def __call__(self, data: dict):
        """`data["inputs"]` (the whole `data` when it has no `"inputs"`), optional `data["parameters"]` (a dict of
        pipeline parameters); returns what the pipeline returns (see the module docstring)."""
        if not isinstance(data, dict):
            raise TypeError(f"the request must be a JSON object with 'inputs', got {type(data).__name__}")
        inputs = data.get("inputs", data)
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise TypeError(f"'parameters' must be a JSON object, got {type(parameters).__name__}")
        parameters = {**self.defaults, **parameters}
        if inputs == []:
            return []
        if self.task == "question-answering":
            return self._answer(inputs, parameters)
        if self.task == "token-classification":
            for name, item in _named_items(inputs, (str,), "a str or a list of str"):
                texts.check_text(item, name)
            return self.pipeline(inputs, **parameters)
        return self._classify(inputs, parameters)

    def _classify(self, inputs, parameters: dict):
        one = isinstance(inputs, (str, dict))
        items = [inputs] if one else inputs
        expected = "a str, a {'text', 'text_pair'} object or a list of them"
        for name, item in _named_items(inputs, (str, dict), expected):
            if isinstance(item, dict):
                unknown = set(item) - {"text", "text_pair"}
                if "text" not in item or unknown:
                    raise ValueError(f"{name} must have the keys 'text' and optionally 'text_pair', got "
                                     f"{sorted(item)}")
                for key, value in item.items():
                    texts.check_text(value, f"{name}[{key!r}]")
            else:
                texts.check_text(item, name)
        first_texts = [item["text"] if isinstance(item, dict) else item for item in items]
        empty = set(texts.texts_without_tokens(self.pipeline.tokenizer, first_texts))
        kept = [item for i, item in enumerate(items) if i not in empty]
        if one:
            return None if empty else self.pipeline(inputs, **parameters)
        results = iter(self.pipeline(kept, **parameters) if kept else [])
        return [None if i in empty else next(results) for i in range(len(items))]

    def _answer(self, inputs, parameters: dict):
        """`{"answer", "start", "end", "score"}` per question, as `hf_bert_tasks.qa.predictor.answer_questions`
        gives it: windows of `max_seq_length` tokens sharing `doc_stride` context tokens, decoded by `qa_spans`."""
        unknown = set(parameters) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}; a QA endpoint takes {sorted(self.defaults)}")
        expected = "a {'question': str, 'context': str} object or a list of them"
        items = _named_items(inputs, (dict,), expected)
        for name, item in items:
            if not isinstance(item, dict) or set(item) != {"question", "context"}:
                got = sorted(item) if isinstance(item, dict) else type(item).__name__
                raise ValueError(f"{name} must be an object with exactly the keys 'question' and 'context', got {got}")
            for key in ("question", "context"):
                if not texts.check_text(item[key], f"{name}[{key!r}]").strip():
                    raise ValueError(f"{name}[{key!r}] is empty or blank: an answer needs a question and a context")
            length = len(self.tokenizer(item["question"].lstrip(), add_special_tokens=False)["input_ids"])
            if length > parameters["max_question_length"]:
                raise ValueError(f"{name}['question'] has {length} tokens; this model reads questions of at most "
                                 f"{parameters['max_question_length']} (max_question_length)")
        questions = [item["question"].lstrip() for _, item in items]
        contexts = [item["context"] for _, item in items]
        encoded = self.tokenizer(questions, contexts, truncation="only_second", max_length=parameters["max_seq_length"],
                                 stride=parameters["doc_stride"], return_overflowing_tokens=True,
                                 return_offsets_mapping=True, padding=True, return_tensors="pt")
        windows = len(encoded["input_ids"])
        features = {"example_id": [str(int(i)) for i in encoded["overflow_to_sample_mapping"]],
                    "offset_mapping": [[offset if kind == 1 else None
                                        for offset, kind in zip(encoded["offset_mapping"][w].tolist(),
                                                                encoded.sequence_ids(w))] for w in range(windows)]}
        names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in encoded]
        starts, ends = [], []
        with torch.no_grad():
            for begin in range(0, windows, parameters["batch_size"]):
                output = self.model(**{name: encoded[name][begin:begin + parameters["batch_size"]]
                                       for name in names})
                starts.append(output.start_logits.float())
                ends.append(output.end_logits.float())
        predictions = qa_spans.postprocess_predictions(
            {"id": [str(i) for i in range(len(items))], "context": contexts}, features,
            torch.cat(starts).numpy(), torch.cat(ends).numpy(), parameters["n_best_size"],
            parameters["max_answer_length"], parameters["version_2_with_negative"],
            parameters["null_score_diff_threshold"])
        answers = [{key: predictions[str(i)][key] for key in ("answer", "start", "end", "score")}
                   for i in range(len(items))]
        return answers[0] if isinstance(inputs, dict) else answers
