"""Publishing to the Hugging Face Hub: a trained model (NER, classification, QA) with its model card, and the
demo Space.

    python -m hf_bert_tasks.hub push-model out/conll ORG/bert-crf-conll --dataset conll2003 --language en
    python -m hf_bert_tasks.hub push-space spaces ORG/ner-demo --model-id ORG/bert-crf-conll

Decisions:
- **Everything is checked before the first request.** `push_model` and `push_space` verify the token, the repo id
  and the folder (config, safetensors weights, every custom-code file that `auto_map` names and the files those
  import, the tokenizer), render the card and parse it back, and only then talk to the Hub. A mistake costs no
  half-made repo, and each error names what is wrong and how to fix it.
- **An allow-list of files.** What is pushed is the model and nothing of the training run: config, safetensors
  weights (one file or an index and its shards), the custom code (`*.py`), tokenizer files, the `*_results.json`
  metrics, the rendered `README.md` and the Inference Endpoints handler (`handler.py`, the files it loads,
  `requirements.txt`; added from the package when the folder lacks them). Checkpoints, `trainer_state.json`,
  `card_facts.json` (both read into the card), `training_args.bin` (a pickle), `runs/` and prediction files stay
  local; pickle weights (`pytorch_model.bin`) are never pushed. Files of those kinds that
  are on the Hub but no longer in the folder (an old shard, a renamed module) are deleted in the same commit, so the
  repo holds one consistent model; other files on the Hub are left alone.
- **One commit per push, the user's folder untouched.** The files are staged as links in a temporary folder next to
  the freshly rendered `README.md`, then sent with `HfApi.upload_folder`. The commit sha is returned: load exactly
  that model with `from_pretrained(repo_id, revision=sha)`.
- **The card is built with huggingface_hub's card tools.** The YAML comes from `ModelCardData` with one `EvalResult`
  per split and metric (the strict entity-level precision/recall/F1 of `all_results.json`), so the `model-index`
  has the Hub's schema; the body comes from a Jinja template (`model_cards/ner.md`). `ModelCard.validate` asks the
  Hub, so the local check instead parses the rendered card back with `ModelCard` and requires that
  `model_index_to_eval_results` returns exactly the results that were put in. (The upload itself also goes through
  the Hub's `validate-yaml`.)
- **The Space gets its model id twice:** in its README metadata (`models: [MODEL_ID]`, which links Space and model
  on the Hub) and as the Space variable `MODEL_ID`, which the app reads from its environment.
- Authentication is huggingface_hub's: `token=`, else `HF_TOKEN`, else the token saved by `hf auth login`.
  `HF_ENDPOINT` selects another Hub (a mirror, or the loopback server of the tests).
"""

import ast
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from huggingface_hub import (
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    SpaceCard,
    SpaceCardData,
    get_token,
)
from huggingface_hub.repocard_data import model_index_to_eval_results
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .files import TOKENIZER_VOCABULARIES
from .predictor.auto import task_of

REPO_ROOT = Path(__file__).resolve().parent.parent


def _model_cards_folder() -> Path:
    """Where the card templates are. `model_cards/` at the repository root is their one source, where users read and
    edit them; pyproject.toml ships that folder in the wheel as package data, at `hf_bert_tasks/model_cards/`. So: the
    installed package's copy when there is one (`pip install .`), else the checkout's (source tree, editable install)."""
    installed = Path(__file__).resolve().parent / "model_cards"
    return installed if installed.is_dir() else REPO_ROOT / "model_cards"


MODEL_CARDS = _model_cards_folder()
NER_CARD_TEMPLATE = MODEL_CARDS / "ner.md"

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
# A tokenizer needs its config and one vocabulary file of TOKENIZER_VOCABULARIES (files.py, the predictors' check).
TOKENIZER_FILES = (*TOKENIZER_VOCABULARIES, "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "merges.txt", "chat_template.jinja")
RESULT_FILES = ("all_results.json", "eval_results.json", "test_results.json", "train_results.json")
# The Inference Endpoints custom handler (modeling/handler.py) and the modeling files it loads (the shared input
# checks, the QA decoding, torch's threads), copied next to the weights, and the requirements.txt the endpoint
# installs: pyproject's ranges (tests/test_endpoint.py compares).
ENDPOINT_CODE = ("handler.py", "texts.py", "qa_spans.py", "threads.py")
ENDPOINT_REQUIREMENTS = ("torch>=2.4", "transformers>=5.0")
# Remote files of the kinds push_model manages: deleted when the pushed folder no longer has them.
MANAGED_PATTERNS = ["config.json", "*.safetensors", WEIGHTS_INDEX_NAME, "*.py", "requirements.txt", *TOKENIZER_FILES,
                    *RESULT_FILES]
SPACE_FILES = ("app.py", "requirements.txt", "README.md")  # README.md: the template, rendered on push

SPLIT_NAMES = {"eval": "validation", "test": "test"}
METRICS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))


class TaskCard(NamedTuple):
    """What a model card says about a task: the Hub's pipeline tag and task name, the name in commit messages, the
    metrics of all_results.json (key without the split prefix, label) and the one the commit message quotes, how the
    metric names are qualified, the template."""

    pipeline_tag: str
    task_name: str
    short_name: str
    metrics: tuple[tuple[str, str], ...]
    headline_metric: str
    metric_qualifier: str
    template: Path


NER_CARD = TaskCard("token-classification", "Named Entity Recognition", "NER", METRICS, "f1",
                    " (strict, entity level)", NER_CARD_TEMPLATE)
# The transformers heads of the classify and qa recipes, by their task (`predictor.auto.task_of`); anything else is an
# NER model.
TASK_CARDS = {
    "classification": TaskCard("text-classification", "Text Classification", "Text Classification",
                               (("accuracy", "Accuracy"), ("f1", "F1 (positive class)"),
                                ("macro_f1", "Macro F1"), ("matthews_correlation", "Matthews correlation")),
                               "accuracy", "", MODEL_CARDS / "classification.md"),
    "qa": TaskCard("question-answering", "Question Answering", "Question Answering",
                   (("exact_match", "Exact match"), ("f1", "F1")), "exact_match", "", MODEL_CARDS / "qa.md"),
}
EXAMPLE_TEXTS = {"zh": "明朝建立于1368年，开国皇帝是朱元璋。",
                 "en": "Angela Weber flew from Dublin to Toronto on Monday."}
LOGIN_HELP = ("pass token=..., set the HF_TOKEN environment variable, or run `hf auth login` "
              "(a token with write access: https://huggingface.co/settings/tokens)")


# --- checks ----------------------------------------------------------------------------------------------------------
def check_repo_id(repo_id: str, what: str = "repo id") -> str:
    """`namespace/name` as the Hub accepts it, else a ValueError saying what is wrong."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"{what} {repo_id!r} must be 'namespace/name': your user or organisation name, a slash, "
                         "and the repo name (e.g. my-org/bert-crf-conll)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{what} {repo_id!r} is not valid on the Hub: {error}") from None
    return repo_id


def resolve_token(token: str | None) -> str:
    token = token or get_token()
    if not token:
        raise ValueError(f"No Hugging Face token found: {LOGIN_HELP}")
    return token


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir} is not a folder")
    if not path.is_file():
        raise ValueError(f"{model_dir} has no config.json: save the model there with model.save_pretrained()")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def weight_files(model_dir: Path) -> list[str]:
    """The safetensors weight files of the folder (one file, or the index and every shard it names)."""
    from safetensors import safe_open

    if (model_dir / WEIGHTS_NAME).is_file():
        files = [WEIGHTS_NAME]
    elif (model_dir / WEIGHTS_INDEX_NAME).is_file():
        index = json.loads((model_dir / WEIGHTS_INDEX_NAME).read_text(encoding="utf-8"))
        shards = sorted(set(index.get("weight_map", {}).values()))
        missing = [s for s in shards if not (model_dir / s).is_file()]
        if not shards or missing:
            raise ValueError(f"{model_dir / WEIGHTS_INDEX_NAME} names shards that are missing: {missing or 'none'}")
        files = [WEIGHTS_INDEX_NAME, *shards]
    else:
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in model_dir.glob(pattern))
        found = f" (found only pickle weights {pickles}, which are never pushed)" if pickles else ""
        raise ValueError(f"{model_dir} has no {WEIGHTS_NAME}{found}: load the model and save it again with "
                         "save_pretrained(), which writes safetensors")
    for name in files:
        if name.endswith(".safetensors"):
            try:
                with safe_open(model_dir / name, framework="pt") as f:
                    f.keys()
            except Exception as error:  # safetensors raises its own error types for a corrupt header
                raise ValueError(f"{model_dir / name} is not a readable safetensors file: {error}") from None
    return files


def custom_code_files(model_dir: Path, *configs: dict) -> list[str]:
    """Every module file the configs' `auto_map` names, with the sibling files they import (recursively).

    Raises a ValueError naming the first missing file and who needs it.
    """
    from transformers.dynamic_module_utils import get_relative_imports  # here: `--help` need not load transformers

    needed: dict[str, str] = {}  # file -> why it is needed
    for config in configs:
        for auto_class, references in (config.get("auto_map") or {}).items():
            for reference in references if isinstance(references, (list, tuple)) else [references]:
                if not reference or "--" in reference:  # None (no fast/slow class) or code in another repo
                    continue
                module = reference.rsplit(".", 1)[0]
                needed.setdefault(f"{module}.py", f"auto_map[{auto_class!r}] = {reference!r}")
    pending, files = list(needed), []
    while pending:
        name = pending.pop(0)
        if name in files:
            continue
        if not (model_dir / name).is_file():
            raise ValueError(f"{model_dir} lacks the custom-code file {name}, needed by {needed[name]}: save the "
                             "model with save_pretrained() after register_for_auto_class() "
                             "(hf_bert_tasks.modeling.register_auto_classes() does that), which copies the module "
                             "files next to the weights")
        files.append(name)
        for module in get_relative_imports(model_dir / name):
            sibling = f"{module}.py"
            needed.setdefault(sibling, f"the relative import in {name}")
            pending.append(sibling)
    return files


def tokenizer_files(model_dir: Path) -> list[str]:
    present = [name for name in TOKENIZER_FILES if (model_dir / name).is_file()]
    if "tokenizer_config.json" not in present or not any(name in present for name in TOKENIZER_VOCABULARIES):
        raise ValueError(f"{model_dir} has no complete tokenizer (tokenizer_config.json and one of "
                         f"{', '.join(TOKENIZER_VOCABULARIES)}): save it with tokenizer.save_pretrained(), "
                         "as the recipe's trainer.save_model() does")
    return present


def model_files(model_dir: Path) -> list[str]:
    """Every file of the folder that push_model sends (README.md aside), after checking the folder is complete."""
    config = read_config(model_dir)
    tokenizer_config = {}
    if (model_dir / "tokenizer_config.json").is_file():
        tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    files = ["config.json", *weight_files(model_dir), *custom_code_files(model_dir, config, tokenizer_config)]
    files += [p.name for p in sorted(model_dir.glob("*.py")) if p.name not in files]  # other code the author added
    files += tokenizer_files(model_dir)
    files += [name for name in ("requirements.txt", *RESULT_FILES) if (model_dir / name).is_file()]
    return list(dict.fromkeys(files))


def endpoint_files() -> dict[str, str]:
    """The Inference Endpoints files of a model folder, name -> text: `handler.py` (`EndpointHandler`, see
    `modeling/handler.py`), the files it loads (`texts.py`, `qa_spans.py`, `threads.py`) and
    `requirements.txt`."""
    code = {name: (Path(__file__).parent / "modeling" / name).read_text(encoding="utf-8") for name in ENDPOINT_CODE}
    return {**code, "requirements.txt": "\n".join(ENDPOINT_REQUIREMENTS) + "\n"}


def write_endpoint_files(model_dir: str | os.PathLike) -> list[str]:
    """Write `endpoint_files` into a saved model folder of a task the handler serves (NER, classification, QA, by
    its config's `architectures`), so that it deploys as an Inference Endpoint as it is; a file the folder already has
    is kept (the user's own handler wins). Returns the names written ([] for an encoder, an adapter, ...)."""
    model_dir = Path(model_dir)
    architectures = read_config(model_dir).get("architectures") or []
    if not any(name.endswith(("ForTokenClassification", "ForSequenceClassification", "ForQuestionAnswering"))
               for name in architectures) or not any((model_dir / name).is_file()
                                                      for name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        return []
    written = []
    for name, text in endpoint_files().items():
        if not (model_dir / name).is_file():
            (model_dir / name).write_text(text, encoding="utf-8")
            written.append(name)
    return written


# --- model card ------------------------------------------------------------------------------------------------------
def eval_results(results: dict, dataset: str, task: TaskCard = NER_CARD) -> list[EvalResult]:
    """One EvalResult per split (eval -> validation, test) and metric of `task` found in `results` (for NER the
    strict entity-level precision, recall and F1)."""
    return [
        EvalResult(
            task_type=task.pipeline_tag, task_name=task.task_name,
            dataset_type=dataset, dataset_name=dataset, dataset_split=split,
            metric_type=metric, metric_name=f"{split.capitalize()} {pretty}{task.metric_qualifier}",
            metric_value=float(results[f"{prefix}_{metric}"]),
        )
        for prefix, split in SPLIT_NAMES.items()
        for metric, pretty in task.metrics
        if f"{prefix}_{metric}" in results
    ]


def task_card(config: dict) -> TaskCard:
    """The `TASK_CARDS` entry of a classification or QA model's config (its task by `predictor.auto.task_of`),
    `NER_CARD` for any other model."""
    try:
        task = task_of(SimpleNamespace(**config))
    except ValueError:  # no architectures the predictors know: the card of the package's own model
        return NER_CARD
    return TASK_CARDS.get(task, NER_CARD)


def per_type_f1(results: dict) -> tuple[list[str], list[dict]]:
    """Splits and rows `{type, scores}` of the per-type F1 keys (`eval_PER_f1`, `test_LOC_f1`, ...)."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        match = re.fullmatch(r"(eval|test)_(.+)_f1", key)
        if match:
            scores.setdefault(match.group(2), {})[match.group(1)] = float(value)
    splits = [prefix for prefix in SPLIT_NAMES if any(prefix in s for s in scores.values())]
    rows = [{"type": t, "scores": [scores[t].get(s) for s in splits]} for t in sorted(scores)]
    return [SPLIT_NAMES[s] for s in splits], rows


def default_base_model(config: dict) -> str | None:
    """The encoder's Hub id as recorded in its config (`_name_or_path`), unless that was a local folder."""
    name = (config.get("encoder") or {}).get("_name_or_path") or config.get("_name_or_path") or ""
    return name if name and not Path(name).exists() and _is_hub_id(name) else None


def _is_hub_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def render_model_card(
    model_dir: str | os.PathLike,
    results: dict | None = None,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    datasets: str | Sequence[str] | None = None,
    language: str | Sequence[str] | None = None,
    license: str = "apache-2.0",
    training_args: dict | None = None,
    example_text: str | None = None,
    template: str | os.PathLike | None = None,
) -> str:
    """The README.md of a trained model folder: YAML metadata, usage, labels, scores, training, limitations. NER
    models (the CRF model or a token-classification head) get `model_cards/ner.md`; the sequence-classification
    and question-answering heads of the classify and qa recipes get their own template and metrics (`TASK_CARDS`).

    Args:
        model_dir: the saved model (its config.json gives labels, scheme and architecture).
        results: the recipe's `all_results.json` (NER: `eval_precision`, `eval_recall`, `eval_f1`, `test_*`, and per
            type `eval_PER_f1`, ...; classification: `eval_accuracy`, `eval_f1` (two classes), `eval_macro_f1`,
            `eval_matthews_correlation`; QA: `eval_exact_match`,
            `eval_f1`); None or {} for a card without scores.
        repo_id: the Hub id used in the usage snippets (default: `ORG/` + the folder name).
        base_model: the encoder's Hub id; default: the encoder config's `_name_or_path` if it is a Hub id. A local
            path is an error (the Hub links base models by id).
        datasets, language: Hub data set ids and ISO 639 codes for the metadata. The first data set names the
            model-index results ("custom" when none is given).
        license: a Hub license id.
        training_args: settings listed under "Training" (e.g. learning rates, epochs, batch size, seed).
        example_text: the text of the usage snippets (default: an English or Chinese sentence after `language`).
        template: the Jinja template of the card body (default: the task's, in `model_cards/`).

    Returns the card text; raises ValueError when the rendered card does not parse back to the same metadata.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    task = task_card(config)
    template = template or task.template
    if not Path(template).is_file():
        raise ValueError(f"model card template {template} not found (the project's templates are in model_cards/)")
    results = dict(results or {})
    repo_id = repo_id or f"ORG/{model_dir.resolve().name}"
    datasets, language = _as_list(datasets), _as_list(language)
    if base_model is None:
        base_model = default_base_model(config)
    elif Path(base_model).exists() or not _is_hub_id(base_model):
        raise ValueError(f"base_model {base_model!r} must be the encoder's Hub id (e.g. bert-base-cased), not a local "
                         "path: pass the id the encoder was downloaded from, or leave base_model out")

    example_text = example_text or EXAMPLE_TEXTS["zh" if language and language[0].startswith("zh") else "en"]
    if task is not NER_CARD:
        return _render_task_card(config, results, task, template, repo_id=repo_id, base_model=base_model,
                                 datasets=datasets, language=language, license=license, training_args=training_args,
                                 example_text=example_text, run=run_details(model_dir, results, task))

    from .modeling.tagging import split_tag, split_words  # here: `--help` need not load torch (the tag schemes)

    is_crf = config.get("model_type") == "bert_crf"
    is_span = config.get("model_type") == "bert_global_pointer"  # its labels are the entity types
    encoder = config.get("encoder") or config
    labels = [config["id2label"][key] for key in sorted(config.get("id2label", {}), key=int)]
    entity_types = sorted(labels if is_span else {split_tag(label)[1] for label in labels if label not in ("O", "X")})
    tags = ["ner", "token-classification"]
    if is_crf:
        tags += ["bert-crf", "crf", "custom_code"]
    if is_span:
        tags += ["global-pointer", "nested-ner", "custom_code"]
    dataset_id = datasets[0] if datasets else "custom"
    widget, training_details = run_details(model_dir, results, task)
    card_data = ModelCardData(
        library_name="transformers", pipeline_tag="token-classification", license=license, language=language,
        datasets=datasets, base_model=base_model, tags=tags, model_name=repo_id.split("/")[-1],
        eval_results=eval_results(results, dataset_id) or None, widget=widget,
    )

    architecture = _encoder_description(encoder)
    if is_crf:
        architecture += (f", a BiLSTM ({config.get('lstm_hidden_size')} units)" if config.get("use_bilstm") else "")
        architecture += " and a linear-chain CRF"
    elif is_span:
        architecture += (f" and a{'n efficient' if config.get('efficient') else ''} global pointer span head "
                         "(rotary positions)")
    else:
        architecture += " with a softmax classification layer"

    overall = [
        {"split": SPLIT_NAMES[prefix], **{m: float(results[f"{prefix}_{m}"]) for m, _ in METRICS}}
        for prefix in SPLIT_NAMES
        if all(f"{prefix}_{m}" in results for m, _ in METRICS)
    ]
    per_type_splits, per_type = per_type_f1(results)
    scheme, strategy = config.get("tag_scheme", "BIO"), config.get("label_strategy", "first")
    max_seq_length = config.get("max_seq_length", 128)
    settings = [("decoding", config.get("decode", "nested"))] if is_span else \
        [("tag scheme", scheme), ("labelled word pieces", strategy)]
    settings.append(("window length / stride (tokens)", f"{max_seq_length} / {config.get('stride', 32)}"))
    if is_crf:
        settings.append(("constrained transitions", config.get("constrain_transitions", True)))
    settings += [(name, value) for name, value in (training_args or {}).items() if value is not None]

    card = ModelCard.from_template(
        card_data, template_path=str(template),
        model_name=repo_id.split("/")[-1], repo_id=repo_id, architecture=architecture, is_crf=is_crf,
        is_span=is_span, threshold=config.get("threshold", 0.0), decode=config.get("decode", "nested"),
        base_model=base_model, tag_scheme=scheme, label_strategy=strategy,
        constrain_transitions=config.get("constrain_transitions", True), max_seq_length=max_seq_length,
        labels=labels, entity_types=entity_types,
        datasets=datasets or [], overall=overall, per_type=per_type, per_type_splits=per_type_splits,
        settings=settings, example_text=example_text, example_words=[w for w, _, _ in split_words(example_text)],
        training_details=training_details,
    )
    text = str(card)
    check_model_card(text, card_data)
    return text


def _encoder_description(encoder: dict) -> str:
    layers = encoder.get("num_hidden_layers", encoder.get("n_layers"))  # DistilBERT names them differently
    hidden = encoder.get("hidden_size", encoder.get("dim"))
    return f"a {layers}-layer {encoder.get('model_type', 'BERT')} encoder (hidden size {hidden})"




def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 90 else f"{minutes} min" if minutes < 90 else \
        f"{minutes // 60} h {minutes % 60:02d} min"


def run_details(model_dir: Path, results: dict, task: TaskCard) -> tuple[list[dict] | None, str]:
    """The card's `widget` examples and its run section (`model_cards/training.md`: training data statistics and
    examples per label, the training log, hyperparameters, framework versions, hardware and training time) from the
    folder's `card_facts.json` (written by the recipes, `hf_bert_tasks.card_facts`), `trainer_state.json` and the
    `results`. A folder without them gets what there is (no widget, an empty section)."""
    from jinja2 import Template

    from .card_facts import read_card_facts

    facts = read_card_facts(model_dir)
    state_path = model_dir / "trainer_state.json"
    history = json.loads(state_path.read_text(encoding="utf-8")).get("log_history", []) if state_path.is_file() \
        else []
    metric_keys = [("eval_loss", "validation loss")] + [(f"eval_{key}", f"validation {pretty}")
                                                      for key, pretty in task.metrics]
    evaluations = [entry for entry in history if "eval_loss" in entry]
    shown = [(key, name) for key, name in metric_keys if any(key in entry for entry in evaluations)]
    losses = [entry for entry in history if "loss" in entry]
    if not evaluations and len(losses) > 20:  # a training-loss-only log: 20 evenly spaced rows
        losses = [losses[round(i * (len(losses) - 1) / 19)] for i in range(20)]
    rows = []
    for entry in evaluations or losses:
        logged = [e["loss"] for e in history if "loss" in e and e.get("step", 0) <= entry.get("step", 0)]
        rows.append({"epoch": f"{entry.get('epoch', 0):.2f}", "step": entry.get("step", ""),
                     "loss": f"{logged[-1]:.4f}" if logged else "",
                     "scores": [f"{entry[key]:.4f}" if key in entry else "" for key, _ in shown]})
    template = Template((MODEL_CARDS / "training.md").read_text(encoding="utf-8"))
    runtime = _duration(results["train_runtime"]) if "train_runtime" in results else None
    section = template.render(task=facts.get("task"), statistics=facts.get("statistics"),
                              examples=facts.get("examples", {}), log=rows, log_metrics=[name for _, name in shown],
                              hyperparameters=facts.get("hyperparameters"), versions=facts.get("versions"),
                              hardware=facts.get("hardware"), runtime=runtime)
    return facts.get("widget") or None, ("\n" + section.strip() + "\n\n") if section.strip() else "\n"


def _render_task_card(config: dict, results: dict, task: TaskCard, template, *, repo_id, base_model, datasets, language,
                      license, training_args, example_text, run: tuple) -> str:
    """`render_model_card` for a text-classification or question-answering model (`run`: `run_details`)."""
    widget, training_details = run
    card_data = ModelCardData(
        library_name="transformers", pipeline_tag=task.pipeline_tag, license=license, language=language,
        datasets=datasets, base_model=base_model, tags=[task.pipeline_tag], model_name=repo_id.split("/")[-1],
        eval_results=eval_results(results, datasets[0] if datasets else "custom", task) or None, widget=widget,
    )
    scores = [{"split": split, "metric": pretty, "value": float(results[f"{prefix}_{metric}"])}
              for prefix, split in SPLIT_NAMES.items() for metric, pretty in task.metrics
              if f"{prefix}_{metric}" in results]
    # The settings each task's recipe stores in config.json (each task declares its own), listed under "Training".
    from .classification.predictor import SAVED_SETTINGS as classification_settings
    from .qa.predictor import SAVED_SETTINGS as qa_settings

    saved = dict.fromkeys([*classification_settings, *qa_settings])
    settings = [(key, config[key]) for key in saved if config.get(key) is not None]
    settings += [(name, value) for name, value in (training_args or {}).items() if value is not None]
    question = "开国皇帝是谁？" if language and language[0].startswith("zh") else "Where did Angela Weber fly to?"
    card = ModelCard.from_template(
        card_data, template_path=str(template), model_name=repo_id.split("/")[-1], repo_id=repo_id,
        architecture=_encoder_description(config), base_model=base_model, datasets=datasets or [],
        labels=[config["id2label"][key] for key in sorted(config.get("id2label", {}), key=int)],
        multi_label=config.get("problem_type") == "multi_label_classification", scores=scores, settings=settings,
        example_text=example_text, example_question=question, abstains=bool(config.get("version_2_with_negative")),
        training_details=training_details,
    )
    text = str(card)
    check_model_card(text, card_data)
    return text


def check_model_card(text: str, expected: ModelCardData) -> None:
    """Parse the card back as the Hub would read it and compare with the metadata that was put in.

    `ModelCard.validate()` needs the Hub; this local check catches what can be caught here: YAML that does not parse,
    a model-index that `model_index_to_eval_results` cannot read or that does not give back the same results, and
    missing fields.
    """
    try:
        card = ModelCard(text)
    except Exception as error:
        raise ValueError(f"the rendered model card does not parse: {error}") from None
    metadata = card.data.to_dict()
    for key, value in expected.to_dict().items():
        if key != "model-index" and metadata.get(key) != value:
            raise ValueError(f"model card metadata {key!r} reads back as {metadata.get(key)!r}, expected {value!r}")
    if expected.eval_results:
        name, results = model_index_to_eval_results(metadata["model-index"])
        if name != expected.model_name or results != expected.eval_results:
            raise ValueError("the model card's model-index does not read back to the results it was built from")


# --- pushing ---------------------------------------------------------------------------------------------------------
def _stage(files: dict[str, Path], texts: dict[str, str], folder: Path) -> None:
    """Put links to `files` (name -> source) and the `texts` into `folder`, without copying the weights."""
    for name, source in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(source.resolve(), target)
        except OSError:  # no symlinks (some Windows setups): copy
            shutil.copy2(source, target)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    **card_kwargs,
) -> str:
    """Check a saved model folder, then push it with its model card to `repo_id` in one commit.

    Args:
        model_dir: a folder written by `save_pretrained` (+ the tokenizer), e.g. the recipe's `--output_dir`; its
            `all_results.json`, when present, fills the card's scores. A README.md of the folder is not pushed: the
            card is rendered anew from config.json and all_results.json on every push.
        repo_id: `namespace/name`; the repo is created (public unless `private`) if it does not exist.
        token: a Hub token with write access (default: `HF_TOKEN` or the `hf auth login` token).
        revision: the branch to commit to (created from main if needed); default main.
        commit_message: default "Upload NER model" (or the task's name) with its headline validation score.
        **card_kwargs: passed to `render_model_card` (`base_model`, `datasets`, `language`, `license`,
            `training_args`, `example_text`, `template`).

    Returns the sha of the new commit (`from_pretrained(repo_id, revision=sha)` loads exactly this model).
    Raises ValueError, before any request, for a malformed repo id, a missing token or an incomplete folder.
    """
    model_dir = Path(model_dir)
    check_repo_id(repo_id)
    files = model_files(model_dir)
    results_path = model_dir / "all_results.json"
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    card = render_model_card(model_dir, results, repo_id=repo_id, **card_kwargs)
    # A folder saved without the recipes still deploys: the endpoint files it lacks are added to the push.
    texts = {"README.md": card, **{name: text for name, text in endpoint_files().items() if name not in files}}
    token = resolve_token(token)
    if commit_message is None:
        task = task_card(read_config(model_dir))
        headline, pretty = task.headline_metric, dict(task.metrics)[task.headline_metric]
        commit_message = f"Upload {task.short_name} model" + (
            f" (validation {pretty} {results[f'eval_{headline}']:.4f})" if f"eval_{headline}" in results else "")

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hf-bert-tasks-push-") as staging:
        _stage({name: model_dir / name for name in files}, texts, Path(staging))
        commit = api.upload_folder(repo_id=repo_id, folder_path=staging, revision=revision,
                                   commit_message=commit_message, delete_patterns=MANAGED_PATTERNS)
    return commit.oid


def take_push_request(training_args) -> bool:
    """For the recipes: whether `--push_to_hub` was given, after checking the repo id and the token (before any
    training). The Trainer's own pushing is switched off: the recipe pushes the finished model with `push_model`
    (weights, code, tokenizer, card), not the Trainer's checkpoints."""
    push, training_args.push_to_hub = training_args.push_to_hub, False
    if push:
        if not training_args.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME")
        check_repo_id(training_args.hub_model_id)
        resolve_token(training_args.hub_token)
    return push


def push_recipe_output(training_args, dataset_name: str | None, settings: dict) -> str:
    """`push_model` of the recipe's `--output_dir` to `--hub_model_id` (with `--hub_token`, `--hub_revision`,
    `--hub_private_repo`); `settings` are listed in the card. Prints and returns the commit sha."""
    sha = push_model(training_args.output_dir, training_args.hub_model_id, token=training_args.hub_token,
                     revision=training_args.hub_revision, private=bool(training_args.hub_private_repo),
                     datasets=[dataset_name] if dataset_name else None, training_args=settings)
    print(f"pushed {training_args.hub_model_id} at revision {sha}")
    return sha


def render_space_card(template: str | os.PathLike, *, repo_id: str, model_id: str, title: str | None = None,
                      sdk_version: str | None = None) -> str:
    """The Space's README.md from its template: metadata (`sdk: gradio`, `app_file`, `models`) plus the body."""
    if sdk_version is None:
        try:
            sdk_version = version("gradio")
        except PackageNotFoundError:
            sdk_version = None  # the Hub then picks its default Gradio
    short_description = f"Demo of {model_id}"
    if len(short_description) > 60:  # the Hub's limit
        short_description = "BERT-family NER, text classification or QA demo"
    card_data = SpaceCardData(
        title=title or repo_id.split("/")[-1].replace("-", " ").replace("_", " ").title(), emoji="🏷️",
        colorFrom="blue", colorTo="indigo", sdk="gradio", sdk_version=sdk_version, app_file="app.py",
        pinned=False, models=[model_id], short_description=short_description,
    )
    text = str(SpaceCard.from_template(card_data, template_path=str(template), model_id=model_id, repo_id=repo_id))
    metadata = SpaceCard(text).data.to_dict()
    for key in ("sdk", "app_file", "models"):
        if metadata.get(key) != card_data.to_dict()[key]:
            raise ValueError(f"the rendered Space card's {key!r} reads back as {metadata.get(key)!r}")
    return text


def space_package_modules(entry: str | os.PathLike) -> dict[str, Path]:
    """The package's modules that the script `entry` imports, directly or through each other, with the
    `__init__.py` of every package on the way (Python runs those on import): `{"hf_bert_tasks/ner/predictor.py":
    path, ...}`, paths of this installed copy of the package.

    Found by reading the `import` statements (`ast`), all of them, including those inside functions (a lazy import
    runs when that function does), so the set is the closure a reader would draw and needs no list kept by hand.
    Imports built from strings at run time (`importlib.import_module(name)`) are not seen; the package has none.
    """
    package_dir = Path(__file__).resolve().parent
    package = package_dir.name

    def module_file(name: str) -> Path | None:
        parts = name.split(".")[1:]
        for candidate in (package_dir.joinpath(*parts).with_suffix(".py") if parts else None,
                          package_dir.joinpath(*parts, "__init__.py")):
            if candidate is not None and candidate.is_file():
                return candidate
        return None

    def imported_modules(path: Path, module: str | None) -> set[str]:
        """Absolute names of the package modules that `path` (module `module`, None for the script) imports."""
        names = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    if module is None:
                        continue  # a script has no package to be relative to
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                names.add(base_name)
                names.update(f"{base_name}.{alias.name}" for alias in node.names)  # `from pkg import module`
        return {name for name in names if name == package or name.startswith(package + ".")}

    found: dict[str, Path] = {}
    pending = sorted(imported_modules(Path(entry), None))
    while pending:
        name = pending.pop()
        path = module_file(name)
        if path is None:
            continue  # `from pkg.module import function`: the name of a function, not a module
        parts = name.split(".")
        for depth in range(1, len(parts)):  # the packages on the way are imported first
            pending.append(".".join(parts[:depth]))
        key = f"{package}/{path.relative_to(package_dir).as_posix()}"
        if key not in found:
            found[key] = path
            pending.extend(imported_modules(path, name))
    return dict(sorted(found.items()))


def push_space(
    space_dir: str | os.PathLike,
    repo_id: str,
    *,
    model_id: str,
    token: str | None = None,
    private: bool = False,
    title: str | None = None,
    commit_message: str = "Upload demo",
) -> str:
    """Create (or update) a Gradio Space that demonstrates `model_id`; returns the commit sha.

    The model may be of any task the app serves (NER, text classification, extractive QA): the app picks its page
    from the model's config when the Space starts.

    Uploaded: what the Space needs and nothing else. From `space_dir`, `app.py`, `requirements.txt` and `README.md`
    (the template, rendered with the Space metadata; other files of the folder stay local). From the package, the
    modules `app.py` imports, directly or through each other (`space_package_modules`, this installed version):
    the Space runs the package's own prediction code without the package being published on PyPI, and
    `requirements.txt` lists only what those modules need. Files of an earlier push that are no longer needed (a
    module the app stopped importing) are deleted in the same commit. The Space variable `MODEL_ID` is set to
    `model_id`: the app reads the model to load from it.
    """
    space_dir = Path(space_dir)
    check_repo_id(repo_id, "Space id")
    check_repo_id(model_id, "model id")
    for name in SPACE_FILES:
        if not (space_dir / name).is_file():
            raise ValueError(f"{space_dir} has no {name}: a Gradio Space needs app.py, requirements.txt and the "
                             "README.md template (see spaces/ in this project)")
    card = render_space_card(space_dir / "README.md", repo_id=repo_id, model_id=model_id, title=title)
    files = {name: space_dir / name for name in SPACE_FILES if name != "README.md"}
    files.update(space_package_modules(space_dir / "app.py"))
    token = resolve_token(token)

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.add_space_variable(repo_id, "MODEL_ID", model_id,
                           description="Hub id of the model the demo loads (NER, text classification or QA)")
    with tempfile.TemporaryDirectory(prefix="hf-bert-tasks-space-") as staging:
        _stage(files, {"README.md": card}, Path(staging))
        commit = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=staging,
                                   commit_message=commit_message, delete_patterns=["*.py"])
    return commit.oid


# --- command line ----------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    """Push a trained model (NER, classification or QA, with its model card) or the demo Space to the Hub.

    Authentication: HF_TOKEN or `hf auth login`. HF_ENDPOINT selects another Hub endpoint.
    """
    import argparse
    import inspect
    import sys

    examples = "examples:\n" + "\n".join(line for line in __doc__.splitlines() if "python -m" in line)
    parser = argparse.ArgumentParser(prog="python -m hf_bert_tasks.hub", description=inspect.cleandoc(main.__doc__),
                                     epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser("push-model", help="push a saved model folder and its rendered model card",
                                description=push_model.__doc__.split("\n")[0])
    model.add_argument("model_dir", help="folder written by the recipe (--output_dir) or save_pretrained")
    model.add_argument("repo_id", help="namespace/name of the model repo (created if needed)")
    model.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    model.add_argument("--private", action="store_true", help="create the repo private")
    model.add_argument("--commit-message", default=None, help="commit message")
    model.add_argument("--base-model", default=None, help="Hub id of the encoder (default: from config.json)")
    model.add_argument("--dataset", action="append", default=None, help="Hub id of a training data set (repeatable)")
    model.add_argument("--language", action="append", default=None, help="ISO 639 language code (repeatable)")
    model.add_argument("--license", default="apache-2.0", help="Hub license id (default: apache-2.0)")
    space = commands.add_parser("push-space", help="push the Gradio demo Space",
                                description=push_space.__doc__.split("\n")[0])
    space.add_argument("space_dir", help="folder with app.py, requirements.txt and the README.md template")
    space.add_argument("repo_id", help="namespace/name of the Space (created if needed)")
    space.add_argument("--model-id", required=True, help="Hub id of the model the demo loads")
    space.add_argument("--private", action="store_true", help="create the Space private")
    space.add_argument("--title", default=None, help="Space title (default: from its name)")
    args = parser.parse_args(argv)
    from .progress import quiet_short_bars

    quiet_short_bars()  # no "Loading weights" bar for a load of a second
    try:
        if args.command == "push-model":
            sha = push_model(args.model_dir, args.repo_id, revision=args.revision, private=args.private,
                             commit_message=args.commit_message, base_model=args.base_model, datasets=args.dataset,
                             language=args.language, license=args.license)
        else:
            sha = push_space(args.space_dir, args.repo_id, model_id=args.model_id, private=args.private,
                             title=args.title)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(sha)


if __name__ == "__main__":
    main()
