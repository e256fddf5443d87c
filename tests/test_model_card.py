"""The model card's run section (hf_bert_tasks/card_facts.py, hub.run_details, model_cards/training.md): training-set
statistics and examples per label, widget examples from the validation data, the training log, hyperparameters,
framework versions, hardware and time, for NER, classification and QA models trained by their recipes; rendered
through huggingface_hub's ModelCard and validated by the (loopback) Hub. Counts are checked against seqeval's own
entity reader and plain counting of the files."""

import json
import re
from collections import Counter
from importlib.metadata import version

import pytest
from huggingface_hub import ModelCard
from seqeval.metrics.sequence_labeling import get_entities

from conftest import ROOT, run_recipe_in_process
from hf_bert_tasks.hub import render_model_card
from test_hub import hub  # noqa: F401  (the loopback Hub fixture: ModelCard.validate asks it)

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
FIXTURES = ROOT / "tests" / "fixtures"
COMMON = ["--do_train", "--do_eval", "--eval_strategy", "epoch", "--num_train_epochs", 2, "--save_strategy", "no",
          "--report_to", "none", "--use_cpu", "--seed", 1, "--logging_steps", 5]


def conll_sentences(path):
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip() and not b.startswith("-DOC")]
    return [[line.split() for line in block.splitlines()] for block in blocks]


def section(card: str, title: str) -> str:
    return re.search(rf"### {title}\n\n(.*?)(?=\n###|\n## )", card, flags=re.S).group(1)


def check_common(card_text: str, out, hub_server) -> ModelCard:
    card = ModelCard(card_text)
    card.validate()  # the Hub's own check (here: the loopback server's validate-yaml)
    state = json.loads((out / "trainer_state.json").read_text())
    evaluations = [e for e in state["log_history"] if "eval_loss" in e]
    log_rows = section(card_text, "Training log").strip().splitlines()[2:]
    assert len(log_rows) == len(evaluations) == 2
    for row, entry in zip(log_rows, evaluations):
        assert row.startswith(f"| {entry['epoch']:.2f} | {entry['step']} | ") and f"| {entry['eval_loss']:.4f} |" in row
    hyperparameters = section(card_text, "Hyperparameters")
    assert "| learning_rate | 0.005 |" in hyperparameters and "| seed | 1 |" in hyperparameters
    versions = section(card_text, "Framework versions")
    for package in ("transformers", "torch", "datasets"):
        assert f"- {package} {version(package)}" in versions
    results = json.loads((out / "all_results.json").read_text())
    assert re.search(r"Trained on .+ in \d+ s\.", section(card_text, "Hardware and training time"))
    assert f"in {results['train_runtime']:.0f} s." in card_text
    return card


def test_ner_card_states_the_data_the_log_and_the_run(hub, tiny_encoder_dir, tmp_path, monkeypatch):
    out = tmp_path / "ner"
    run_recipe_in_process(ROOT / "recipes" / "ner.py", [
        "--model_name_or_path", tiny_encoder_dir, "--train_file", SAMPLE / "en_train.conll", "--validation_file",
        SAMPLE / "en_dev.conll", "--learning_rate", 5e-3, "--output_dir", out, *COMMON], monkeypatch,
        tmp_path / "cache")
    text = render_model_card(out, json.loads((out / "all_results.json").read_text()), language="en",
                             datasets="conll2003")
    card = check_common(text, out, hub)
    sentences = conll_sentences(SAMPLE / "en_train.conll")
    entities = Counter(kind for s in sentences for kind, _, _ in get_entities([tag for _, tag in s]))
    data = section(text, "Training data")
    assert data.startswith(f"{len(sentences)} sentences, {sum(map(len, sentences)):,} tokens, "
                           f"{sum(entities.values())} entities.")
    for kind, count in entities.items():
        row = re.search(rf"^\| {kind} \| {count} \| (.*) \|$", data, flags=re.M)
        mentions = json.loads(f"[{row.group(1)}]")
        assert 1 <= len(mentions) <= 3 and len(set(mentions)) == len(mentions)
        for mention in mentions:  # each is a training mention of that type
            assert any(" ".join(w for w, _ in s[a:b + 1]) == mention
                       for s in sentences for k, a, b in get_entities([t for _, t in s]) if k == kind)
    dev = conll_sentences(SAMPLE / "en_dev.conll")
    with_entities = [s for s in dev if any(tag != "O" for _, tag in s)]
    assert card.data.widget == [{"text": " ".join(w for w, _ in s)} for s in with_entities[:3]]


def test_classification_and_qa_cards_state_their_data(hub, tiny_encoder_dir, tmp_path, monkeypatch):
    out = tmp_path / "classifier"
    run_recipe_in_process(ROOT / "recipes" / "classify.py", [
        "--model_name_or_path", tiny_encoder_dir, "--train_file", FIXTURES / "classify_news_train.txt",
        "--validation_file", FIXTURES / "classify_news_dev.txt", "--learning_rate", 5e-3, "--output_dir", out,
        *COMMON], monkeypatch, tmp_path / "cache")
    text = render_model_card(out, json.loads((out / "all_results.json").read_text()))
    card = check_common(text, out, hub)
    rows = [line.split("\t", 1) for line in (FIXTURES / "classify_news_train.txt").read_text().splitlines() if line]
    per_class = Counter(label for label, _ in rows)
    data = section(text, "Training data")
    assert data.startswith(f"{len(rows)} texts.")
    for label, count in per_class.items():
        examples = json.loads("[" + re.search(rf"^\| {label} \| {count} \| (.*) \|$", data, flags=re.M).group(1) + "]")
        assert examples == [t for l, t in rows if l == label][:3]
    dev = [line.split("\t", 1)[1] for line in (FIXTURES / "classify_news_dev.txt").read_text().splitlines() if line]
    assert card.data.widget == [{"text": t} for t in dev[:3]]

    out = tmp_path / "qa"
    run_recipe_in_process(ROOT / "recipes" / "qa.py", [
        "--model_name_or_path", tiny_encoder_dir, "--train_file", FIXTURES / "qa_squad_v1.json", "--validation_file",
        FIXTURES / "qa_squad_v1.json", "--max_seq_length", 48, "--doc_stride", 8, "--max_question_length", 16,
        "--learning_rate", 5e-3, "--output_dir", out, *COMMON], monkeypatch, tmp_path / "cache")
    text = render_model_card(out, json.loads((out / "all_results.json").read_text()))
    card = check_common(text, out, hub)
    squad = [(qa["question"], paragraph["context"]) for article in json.loads((FIXTURES / "qa_squad_v1.json")
             .read_text())["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    assert section(text, "Training data").startswith(
        f"{len(squad)} questions over {len({c for _, c in squad})} contexts (0 unanswerable).")
    assert card.data.widget == [{"text": q, "context": c} for q, c in squad[:3]]
