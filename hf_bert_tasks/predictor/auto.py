"""The predictor a model asks for, like transformers' Auto classes: the task from the model's ``config.json``
(:func:`task_of`), then that task's predictor class (:func:`predictor_class`), each with the same
``from_pretrained(path, revision=...)``. The command line (``python -m hf_bert_tasks.predictor``) and the demo Space
choose by this one rule.

Each predictor's ``from_pretrained`` loads its model through :func:`load_model`, which says what is wrong instead of
failing deep inside transformers: a folder of another task's model is named with its kind and the predictor that
loads it (``NerPredictor`` on a classifier would otherwise fail with a wall of "malformed tag 'sports'"); a weights
file that cannot be read (cut short by an interrupted copy) is named; a config whose labels disagree with the weights
is named with the shapes that differ.
"""

from __future__ import annotations


TASKS = ("ner", "classification", "qa")
KINDS = {"ner": "token classifier (NER)", "classification": "sequence classifier",
         "qa": "question-answering model"}
AUTO_CLASSES = {"ner": "AutoModelForTokenClassification", "classification": "AutoModelForSequenceClassification",
                "qa": "AutoModelForQuestionAnswering"}


def task_of(config) -> str:
    """``"ner"``, ``"classification"`` or ``"qa"`` from a config's ``architectures`` (or its CRF or global pointer
    model type)."""
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) in ("bert_crf", "bert_global_pointer") or \
            "TokenClassification" in architectures:
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


# Weight types a predictor loads a model in (``dtype=``): float32 is the default, bfloat16 the fast one on CPUs with
# bf16 instructions and on accelerators (accuracy: benchmarks/README.md).
DTYPES = ("float32", "bfloat16", "float16")


def load_model(task: str, path, revision: str | None = None, dtype=None):
    """The model of ``task`` in ``path`` (a folder or Hub id; custom code trusted, the CRF lives in it), or
    ``ValueError`` saying what the folder holds instead, or what is wrong with its files. ``dtype`` (a name of
    ``DTYPES`` or a torch dtype; ``None``: as saved) is the weights' type; a CRF's scores and a span head stay float32
    (their models' ``_keep_in_fp32_modules_strict``), and every head's scores are computed in float32 or float64."""
    import transformers

    if dtype is not None and str(dtype).removeprefix("torch.") not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (or the torch dtype), got {dtype!r}")

    from ..modeling import register_auto_classes

    register_auto_classes()  # a CRF folder loads as this package's model, not as its copied code
    path = str(path)
    config = transformers.AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=True)
    held = task_of(config)
    if held != task:
        architectures = ", ".join(getattr(config, "architectures", None) or []) or config.model_type
        raise ValueError(f"{path} holds a {KINDS[held]} ({architectures}), not a {KINDS[task]}: load it with "
                         f"{predictor_class(held).__name__}.from_pretrained (python -m hf_bert_tasks.predictor "
                         "picks the predictor by itself)")
    auto_class = getattr(transformers, AUTO_CLASSES[task])
    try:
        return auto_class.from_pretrained(path, revision=revision, config=config, trust_remote_code=True,
                                          **({} if dtype is None else {"dtype": dtype}))
    except Exception as error:
        problem = _weights_problem(path, error, auto_class, config)
        if problem is None:
            raise
        raise ValueError(problem) from None


def _weights_problem(path: str, error: Exception, auto_class, config) -> str | None:
    """What is wrong with a local folder's weights, from the error loading them raised (None: not such an error)."""
    from pathlib import Path

    from safetensors import SafetensorError, safe_open

    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    if isinstance(error, SafetensorError):
        for file in files:
            try:
                with safe_open(str(file), "pt") as weights:
                    weights.keys()
            except SafetensorError as broken:
                return (f"{file} cannot be read ({broken}): the file is damaged or cut short (an interrupted copy or "
                        "download); copy or save the model again")
        return None
    if not (isinstance(error, RuntimeError) and "ignore_mismatched_sizes" in str(error) and files):
        return None
    expected = {name: tuple(tensor.shape) for name, tensor in auto_class.from_config(config).state_dict().items()}
    differ = []
    for file in files:
        with safe_open(str(file), "pt") as weights:
            for name in weights.keys():
                shape = tuple(weights.get_slice(name).get_shape())
                if name in expected and expected[name] != shape:
                    differ.append(f"{name} is {shape} in {file.name}, {expected[name]} by config.json")
    if not differ:
        return None
    return (f"{Path(path) / 'config.json'} does not describe the weights beside it ({config.num_labels} labels: "
            f"{', '.join(config.id2label[i] for i in range(config.num_labels))}): {'; '.join(differ[:4])}. The config "
            "was edited or comes from another model; restore the one saved with these weights")
