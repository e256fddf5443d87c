"""recipes/ner.py end to end, in subprocesses, on the shipped sample with a tiny random encoder (and MiniLM, slow)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, minilm_path
from hf_bert_tasks.ner.data import read_conll
from hf_bert_tasks.ner.metrics import entity_scores
from hf_bert_tasks.ner.predictor import NerPredictor

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
RECIPE = ROOT / "recipes" / "ner.py"


def run_recipe(*args, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([PYTHON, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def common_args(encoder, output_dir, epochs=1):
    return [
        "--model_name_or_path", encoder, "--output_dir", output_dir,
        "--train_file", SAMPLE / "en_train.conll", "--validation_file", SAMPLE / "en_dev.conll",
        "--test_file", SAMPLE / "en_dev.conll", "--do_train", "--do_eval", "--do_predict",
        "--num_train_epochs", epochs, "--per_device_train_batch_size", 16, "--per_device_eval_batch_size", 16,
        "--save_strategy", "no", "--report_to", "none", "--seed", 1, "--use_cpu",
    ]


@pytest.mark.parametrize("context_window, sampling", [(0, "random"), (12, "group_by_length")])
def test_crf_recipe_scores_match_the_predictor(tiny_encoder_dir, tmp_path, context_window, sampling):
    out = tmp_path / "crf"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--max_train_samples", 128, "--learning_rate", 1e-3,
               "--head_learning_rate", 1e-2, "--max_seq_length", 24, "--stride", 4, "--context_window", context_window,
               "--train_sampling_strategy", sampling)
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_f1", "eval_precision", "eval_recall", "test_f1", "test_precision", "test_recall"):
        assert 0.0 <= results[key] <= 1.0, key
    assert {"eval_PER_f1", "eval_LOC_f1"} <= set(results)
    # The recipe's evaluation (Trainer, windows of 16 tokens) and the predictor must agree exactly.
    dev = read_conll(SAMPLE / "en_dev.conll")
    names = dev.features["ner_tags"].feature.names
    gold = [[names[t] for t in sentence] for sentence in dev["ner_tags"]]
    predictor = NerPredictor.from_pretrained(str(out))
    assert (predictor.max_length, predictor.stride, predictor.context_window) == (24, 4, context_window)
    predicted, _ = predictor.predict_words(dev["tokens"], document_ids=dev["document_id"])
    assert sum(tag != "O" for tags in predicted for tag in tags) > 20  # a real comparison, not all "O"
    assert entity_scores(gold, predicted, "BIO")["f1"] == pytest.approx(results["eval_f1"])
    # Predictions follow the test file line for line (its -DOCSTART- and blank lines kept), nothing dropped.
    lines = (out / "test_predictions.txt").read_text(encoding="utf-8").splitlines()
    gold_lines = (SAMPLE / "en_dev.conll").read_text(encoding="utf-8").splitlines()
    assert [line.split()[:1] for line in lines] == [line.split()[:1] for line in gold_lines]
    written = read_conll(out / "test_predictions.txt")
    names = written.features["ner_tags"].feature.names
    assert [[names[t] for t in sentence] for sentence in written["ner_tags"]] == predicted
    assert (out / "modeling_bert_crf.py").exists() and (out / "crf.py").exists()


def test_softmax_head_with_biox_and_scheme_conversion(tiny_encoder_dir, tmp_path):
    out = tmp_path / "softmax"
    run_recipe(*common_args(tiny_encoder_dir, out), "--head", "softmax", "--label_strategy", "x",
               "--scheme", "BIOES", "--source_scheme", "BIO", "--max_train_samples", 32)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert "X" in config["label2id"] and "S-PER" in config["label2id"] and "I-PER" in config["label2id"]
    tags = {line.split("\t")[1] for line in (out / "test_predictions.txt").read_text().split("\n") if line}
    assert tags <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"}  # back in BIO


@pytest.mark.slow
def test_quickstart_with_minilm_learns_the_sample(tmp_path):
    encoder = minilm_path()
    out = tmp_path / "minilm"
    run_recipe(*common_args(encoder, out, epochs=4), "--learning_rate", 5e-5, "--crf_learning_rate", 5e-3)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_f1"] > 0.8, results
    predictor = NerPredictor.from_pretrained(str(out))
    text = "Angela Weber flew from Dublin to Toronto on Monday."
    entities = predictor(text)
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)
    assert {(e["text"], e["type"]) for e in entities} >= {("Dublin", "LOC"), ("Toronto", "LOC")}, entities
