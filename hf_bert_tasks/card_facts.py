"""What a model card says that only the training run knows: the training data's statistics and examples, widget
texts from the validation data, the hyperparameters, the framework versions and the hardware.

Every recipe writes them to ``card_facts.json`` in its ``--output_dir`` when it trains (:func:`write_card_facts`,
called once the data are read), and ``hub.render_model_card`` reads them back with ``trainer_state.json`` (the
training log) and ``all_results.json`` (scores, training time), so a card rendered from the folder at any later time,
on any machine, says what happened on the training machine. The task is read off the data's columns: ``ner_tags``
(NER), ``question`` (QA), ``label`` (classification); other data (pretraining text) get the settings and machine.
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CARD_FACTS = "card_facts.json"
EXAMPLES_PER_LABEL = 3
WIDGET_EXAMPLES = 3
EXAMPLE_CHARS = 160  # a longer example text is cut there, with "..."
VERSIONED = ("hf_bert_tasks", "transformers", "torch", "datasets", "tokenizers", "accelerate", "huggingface_hub")
HYPERPARAMETERS = ("learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
                   "gradient_accumulation_steps", "num_train_epochs", "max_steps", "optim", "adam_beta1",
                   "adam_beta2", "adam_epsilon", "weight_decay", "lr_scheduler_type", "warmup_steps", "seed", "bf16",
                   "fp16")


def _short(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + "..."


def _ner_facts(train, validation) -> dict:
    from .modeling.tagging import repair_tags, tags_to_spans

    names = train.features["ner_tags"].feature.names
    prefixes = {name[0] for name in names if name not in ("O", "X")}
    scheme = "BMES" if "M" in prefixes else "BIOES" if prefixes & {"E", "S"} else "BIO"
    entities, examples = Counter(), {}
    for tokens, tags in zip(train["tokens"], train["ner_tags"]):
        # repaired: a file read without --source_scheme may be IOB1, whose entities start with I-
        tags = ["O" if names[t] == "X" else names[t] for t in tags]
        for span in tags_to_spans(repair_tags(tags, scheme), scheme):
            entities[span.type] += 1
            words = tokens[span.start:span.end]
            # characters of Chinese text are tokens of their own: joined without spaces
            mention = "".join(words) if all(len(w) == 1 and not w.isascii() for w in words) else " ".join(words)
            found = examples.setdefault(span.type, [])
            if mention not in found and len(found) < EXAMPLES_PER_LABEL:
                found.append(mention)
    statistics = {"sentences": train.num_rows, "tokens": sum(map(len, train["tokens"])),
                  "entities": dict(sorted(entities.items()))}
    widget = []
    if validation is not None:  # sentences with entities first, then any
        rows = sorted(range(validation.num_rows), key=lambda i: not any(validation[i]["ner_tags"]))
        widget = [{"text": " ".join(validation[i]["tokens"])} for i in rows[:WIDGET_EXAMPLES]]
    return {"task": "ner", "statistics": statistics, "examples": dict(sorted(examples.items())), "widget": widget}


def _classification_facts(train, validation) -> dict:
    feature = train.features["label"]
    names = feature.feature.names if hasattr(feature, "feature") else feature.names  # multi-label: a list of ids
    per_class, examples = Counter(), {}
    for text, label in zip(train["text"], train["label"]):
        for i in label if isinstance(label, list) else [label]:
            per_class[names[i]] += 1
            found = examples.setdefault(names[i], [])
            if len(found) < EXAMPLES_PER_LABEL:
                found.append(_short(text))
    statistics = {"texts": train.num_rows, "texts_per_class": {name: per_class[name] for name in names}}
    widget = [{"text": _short(text)} for text in (validation["text"][:WIDGET_EXAMPLES] if validation else [])]
    return {"task": "classification", "statistics": statistics, "examples": examples, "widget": widget}


def _qa_facts(train, validation) -> dict:
    statistics = {"questions": train.num_rows, "contexts": len(set(train["context"])),
                  "unanswerable": sum(not answers["text"] for answers in train["answers"])}
    examples = {"questions": [_short(q) for q in train["question"][:EXAMPLES_PER_LABEL]]}
    widget = []
    if validation is not None:
        widget = [{"text": q, "context": c} for q, c in
                  zip(validation["question"][:WIDGET_EXAMPLES], validation["context"][:WIDGET_EXAMPLES])]
    return {"task": "qa", "statistics": statistics, "examples": examples, "widget": widget}


def environment() -> dict:
    """Versions of the frameworks, and the hardware: the GPUs' names, else the CPU's, with its core count."""
    import torch

    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        hardware = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as info:
                cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        hardware = f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return {"versions": versions, "hardware": hardware}


def card_facts(raw, training_args=None) -> dict:
    """The facts of a run on the splits ``raw`` (``train``, optional ``validation``) with ``training_args``."""
    train, validation = raw["train"], raw.get("validation")
    columns = train.column_names
    if "ner_tags" in columns:
        facts = _ner_facts(train, validation)
    elif "question" in columns:
        facts = _qa_facts(train, validation)
    elif "label" in columns:
        facts = _classification_facts(train, validation)
    else:  # pretraining text: nothing task-specific to say
        facts = {"task": None}
    if training_args is not None:
        facts["hyperparameters"] = {name: getattr(training_args, name) for name in HYPERPARAMETERS
                                    if getattr(training_args, name, None) not in (None, False, -1)}
    return {**facts, **environment()}


def write_card_facts(output_dir, raw, training_args=None) -> Path:
    """Write :func:`card_facts` to ``output_dir/card_facts.json``."""
    path = Path(output_dir) / CARD_FACTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card_facts(raw, training_args), ensure_ascii=False, indent=1, default=str) + "\n",
                    encoding="utf-8")
    return path


def read_card_facts(model_dir) -> dict:
    """The folder's ``card_facts.json`` ({} when it has none: a model saved without a recipe)."""
    path = Path(model_dir) / CARD_FACTS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
