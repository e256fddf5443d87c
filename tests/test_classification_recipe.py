"""recipes/classify.py end to end on a tiny random BERT: scores equal the predictor's, prediction files, pairs,
multi-label, LoRA, --help; MiniLM and multi-process runs are marked slow."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as skm
from transformers import AutoTokenizer

from conftest import PYTHON, ROOT, minilm_path
from hf_bert_tasks.classification.data import (
    ClassificationDataError,
    label_names_of,
    load_classification_dataset,
    read_classification_file,
)
from hf_bert_tasks.classification.predictor import classify_texts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECIPE = ROOT / "recipes" / "classify.py"
NEWS_TRAIN, NEWS_DEV = FIXTURES / "classify_news_train.txt", FIXTURES / "classify_news_dev.txt"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def run_recipe(*args, launcher=(PYTHON,), check=True, timeout=600):
    result = subprocess.run([*launcher, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=ENV,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def recipe_module():
    """recipes/classify.py imported (its argument dataclasses; `main()` for in-process error checks)."""
    spec = importlib.util.spec_from_file_location("classify_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def common_args(encoder, output_dir, epochs=1):
    return ["--model_name_or_path", encoder, "--output_dir", output_dir, "--num_train_epochs", epochs,
            "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 8, "--save_strategy", "no",
            "--report_to", "none", "--seed", 1, "--use_cpu"]


@pytest.fixture(scope="module")
def windows_run(tiny_encoder_dir, tmp_path_factory) -> Path:
    """Train (windows of 12 tokens, separate head learning rate, one frozen-encoder epoch), evaluate, predict."""
    out = tmp_path_factory.mktemp("classify") / "windows"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", NEWS_TRAIN, "--validation_file",
               NEWS_DEV, "--test_file", NEWS_DEV, "--do_train", "--do_eval", "--do_predict", "--long_text", "windows",
               "--max_seq_length", 12, "--stride", 4, "--head_learning_rate", 1e-2, "--freeze_encoder_epochs", 1)
    return out


def test_recipe_scores_match_the_predictor(windows_run):
    results = json.loads((windows_run / "all_results.json").read_text())
    config = json.loads((windows_run / "config.json").read_text())
    assert config["id2label"] == {"0": "business", "1": "politics", "2": "sports"}
    assert (config["long_text"], config["max_seq_length"], config["stride"]) == ("windows", 12, 4)
    assert config["problem_type"] == "single_label_classification" and config["sentence_pairs"] is False
    dev = read_classification_file(NEWS_DEV)
    records = classify_texts(str(windows_run), dev["text"])  # a datasets column, as users pass it
    names = label_names_of(dev)
    gold = [names[i] for i in dev["label"]]
    accuracy = np.mean([r["label"] == g for r, g in zip(records, gold)])
    assert results["eval_accuracy"] == pytest.approx(accuracy) == pytest.approx(results["test_accuracy"])
    report = json.loads((windows_run / "eval_classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(results["eval_accuracy"])
    assert report["macro_f1"] == pytest.approx(results["eval_macro_f1"])
    predicted_ids = [names.index(r["label"]) for r in records]
    assert report["confusion_matrix"] == skm.confusion_matrix(dev["label"], predicted_ids, labels=range(3)).tolist()
    assert (windows_run / "eval_confusion_matrix.png").stat().st_size > 1000
    # Predictions: one row per text, the predictor's labels and probabilities.
    rows = [line.split("\t") for line in (windows_run / "test_predictions.tsv").read_text().strip().split("\n")]
    assert rows[0] == ["line", "gold", "label", "score", "prob_business", "prob_politics", "prob_sports"]
    assert [int(r[0]) for r in rows[1:]] == dev["line"] and [r[1] for r in rows[1:]] == gold
    assert [r[2] for r in rows[1:]] == [r["label"] for r in records]
    for row, record in zip(rows[1:], records):
        assert [float(x) for x in row[4:]] == pytest.approx(list(record["probabilities"].values()), abs=1e-5)


def test_recipe_predicts_an_unlabelled_file_with_the_trained_settings(windows_run, tmp_path, monkeypatch):
    raw = tmp_path / "raw.jsonl"
    texts = ["the team won the cup final on monday . the club told the team about the league final .", "the bank"]
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "predict"
    run_recipe("--model_name_or_path", windows_run, "--test_file", raw, "--do_predict", "--output_dir", out,
               "--report_to", "none", "--use_cpu")
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    expected = classify_texts(str(windows_run), texts)  # windows of 12, as trained
    assert [(x["line"], x["text"], x["label"]) for x in lines] == [(1, texts[0], expected[0]["label"]),
                                                                  (2, texts[1], expected[1]["label"])]
    assert lines[0]["probabilities"] == pytest.approx(expected[0]["probabilities"], abs=1e-5)
    assert "gold" not in lines[0] and not (out / "test_classification_report.json").exists()
    # A label the trained model does not know is an error naming file, line and label (in-process: it comes
    # before any training).
    args = ["--model_name_or_path", str(windows_run), "--test_file", str(FIXTURES / "classify_unseen_label.txt"),
            "--do_predict", "--output_dir", str(tmp_path / "bad"), "--report_to", "none", "--use_cpu"]
    monkeypatch.setattr("sys.argv", ["classify.py", *args])
    with pytest.raises(ClassificationDataError, match=r"classify_unseen_label.txt:2: label 'weather' is not in the "
                                                      r"label list; known labels: business, politics, sports"):
        recipe_module().main()


def test_recipe_sentence_pairs_head_tail(tiny_encoder_dir, tmp_path):
    out = tmp_path / "pairs"
    pairs = FIXTURES / "classify_pairs.csv"
    run_recipe(*common_args(tiny_encoder_dir, out), "--train_file", pairs, "--validation_file", pairs,
               "--test_file", pairs, "--text_column", "premise", "--text_pair_column", "hypothesis",
               "--long_text", "head_tail", "--max_seq_length", 10, "--head_tokens", 2, "--do_train", "--do_eval",
               "--do_predict", "--predictions_format", "jsonl")
    config = json.loads((out / "config.json").read_text())
    assert list(config["label2id"]) == ["contradiction", "entailment", "neutral"]
    assert (config["long_text"], config["head_tokens"]) == ("head_tail", 2) and config["sentence_pairs"] is True
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    assert [x["text_pair"] for x in lines][:2] == ["the team won", "the bank is new"]
    expected = classify_texts(str(out), [x["text"] for x in lines], [x["text_pair"] for x in lines])
    assert [x["label"] for x in lines] == [e["label"] for e in expected]
    results = json.loads((out / "all_results.json").read_text())
    assert 0.0 <= results["eval_macro_f1"] <= 1.0
    # What the 10-token window cut (7 tokens of text per pair), counted per split as the predictor's inputs show it.
    data = load_classification_dataset(pairs, format="csv", text_column="premise", text_pair_column="hypothesis")
    rows = data["train"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    lost = [sum(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in (row["text"], row["text_pair"])) - 7
            for row in rows]
    expected = {"texts": sum(n > 0 for n in lost), "share": sum(n > 0 for n in lost) / len(rows),
                "tokens": sum(max(n, 0) for n in lost)}
    assert expected["texts"] >= 2
    saved = json.loads((out / "data_results.json").read_text())
    for prefix in ("train", "eval", "test"):
        for key, value in expected.items():
            assert results[f"{prefix}_truncated_{key}"] == saved[f"{prefix}_truncated_{key}"] == pytest.approx(value)


def test_recipe_sentence_pairs_report_glue_scores(tiny_encoder_dir, tmp_path):
    """MRPC's file layout: two-class pairs get `eval_f1` (of label id 1) and Matthews correlation beside accuracy,
    equal to scikit-learn's on the predictor's labels."""
    out = tmp_path / "paraphrase"
    data = FIXTURES / "classify_paraphrase.tsv"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=3), "--train_file", data, "--validation_file", data,
               "--test_file", data, "--text_column", "#1 String", "--text_pair_column", "#2 String",
               "--label_column", "Quality", "--learning_rate", 1e-3, "--do_train", "--do_eval", "--do_predict")
    results = json.loads((out / "all_results.json").read_text())
    rows = load_classification_dataset(data, text_column="#1 String", text_pair_column="#2 String",
                                       label_column="Quality")["train"]
    assert label_names_of(rows) == ["0", "1"]
    records = classify_texts(str(out), list(rows["text"]), list(rows["text_pair"]))
    predicted = [int(r["label"]) for r in records]
    for prefix in ("eval", "test"):
        assert results[f"{prefix}_f1"] == pytest.approx(skm.f1_score(rows["label"], predicted, pos_label=1))
        assert results[f"{prefix}_matthews_correlation"] == pytest.approx(skm.matthews_corrcoef(rows["label"],
                                                                                                 predicted))
        assert results[f"{prefix}_accuracy"] == pytest.approx(skm.accuracy_score(rows["label"], predicted))
    assert results["train_truncated_texts"] == 0  # every pair fits in 128 tokens


def test_recipe_multi_label(tiny_encoder_dir, tmp_path):
    out = tmp_path / "multi"
    data = FIXTURES / "classify_multilabel.jsonl"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", data, "--validation_file", data,
               "--test_file", data, "--multi_label", "--threshold", 0.4, "--do_train", "--do_eval", "--do_predict",
               "--learning_rate", 1e-3)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["classification_threshold"] == 0.4
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert {"micro_f1", "macro_f1", "accuracy"} <= set(report)
    assert np.array(report["confusion_matrix"]).shape == (3, 2, 2)
    assert np.array(report["confusion_matrix"]).sum() == 3 * 4
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    expected = classify_texts(str(out), [x["text"] for x in lines])
    for line, record in zip(lines, expected):
        assert line["label"] == record["label"] == [k for k, p in sorted(record["probabilities"].items(),
                                                                          key=lambda kv: -kv[1]) if p >= 0.4]
    assert lines[0]["gold"] == ["business", "sports"] and lines[3]["gold"] == []


@pytest.mark.slow
def test_two_processes_predict_like_one(windows_run, tmp_path):
    """torchrun with 2 CPU processes (gloo): distributed evaluation gathers the windows in order, so the pooled
    predictions equal those of one process; `accelerate launch` runs the same script."""
    args = ["--model_name_or_path", windows_run, "--validation_file", NEWS_DEV, "--test_file", NEWS_DEV,
            "--do_eval", "--do_predict", "--per_device_eval_batch_size", 3, "--report_to", "none", "--use_cpu"]
    torchrun = (str(Path(PYTHON).parent / "torchrun"), "--nproc_per_node", "2")
    run_recipe(*args, "--output_dir", tmp_path / "two", launcher=torchrun)
    accelerate = (str(Path(PYTHON).parent / "accelerate"), "launch", "--cpu", "--num_processes", "1",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    run_recipe(*args, "--output_dir", tmp_path / "accelerate", launcher=accelerate)
    reference = (windows_run / "test_predictions.tsv").read_text()
    assert (tmp_path / "two" / "test_predictions.tsv").read_text() == reference
    assert (tmp_path / "accelerate" / "test_predictions.tsv").read_text() == reference


@pytest.mark.slow
def test_minilm_learns_the_news_fixture(tmp_path):
    encoder = minilm_path()
    out = tmp_path / "minilm"
    run_recipe(*common_args(encoder, out, epochs=4), "--train_file", NEWS_TRAIN, "--validation_file", NEWS_DEV,
               "--do_train", "--do_eval", "--learning_rate", 1e-4, "--head_learning_rate", 1e-3,
               "--long_text", "windows", "--max_seq_length", 24, "--stride", 8)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] >= 0.9 and results["eval_macro_f1"] >= 0.9, results
    records = classify_texts(str(out), ["The league club won the cup final on Friday.",
                                        "The bank president said the company was new."])
    assert [r["label"] for r in records] == ["sports", "business"], records


def test_recipe_lora_saves_a_merged_model_that_scores_as_the_adapted_one(tiny_encoder_dir, tmp_path):
    out, again = tmp_path / "lora", tmp_path / "again"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", NEWS_TRAIN, "--validation_file",
               NEWS_DEV, "--lora", "--lora_r", 4, "--learning_rate", 1e-2, "--do_train", "--do_eval")
    assert not (out / "adapter_config.json").exists()  # --lora_save merged: an ordinary model folder
    trained, base = load_file(out / "model.safetensors"), load_file(tiny_encoder_dir / "model.safetensors")
    query = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[f"bert.{query}"], base[query])  # the adapters, merged in
    assert torch.equal(trained["bert.embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
    # The merged folder, evaluated on its own, scores as the adapted model did at the end of training.
    run_recipe(*common_args(out, again), "--validation_file", NEWS_DEV, "--do_eval")
    adapted, merged = (json.loads((d / "eval_results.json").read_text()) for d in (out, again))
    assert merged["eval_accuracy"] == adapted["eval_accuracy"]
    assert merged["eval_loss"] == pytest.approx(adapted["eval_loss"], rel=1e-5)
