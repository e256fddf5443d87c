"""recipes/qa.py end to end with a tiny random BERT: scores and prediction files, answer_questions reproducing its
predictions, version 2 null odds, LoRA merged; two processes under accelerate are marked slow."""

import json
import os
import subprocess
import warnings

import pytest

from conftest import PYTHON, ROOT
from hf_bert_tasks.qa.data import QaDataWarning, read_squad_json
from hf_bert_tasks.qa.metrics import qa_scores
from hf_bert_tasks.qa.predictor import answer_questions

FIXTURES = ROOT / "tests" / "fixtures"
RECIPE = ROOT / "recipes" / "qa.py"


def run_recipe(*args, launcher=(PYTHON,), timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def common_args(encoder, output_dir, data, *extra):
    return ["--model_name_or_path", encoder, "--output_dir", output_dir, "--train_file", data,
            "--validation_file", data, "--do_train", "--do_eval", "--max_seq_length", 48, "--doc_stride", 8,
            "--max_question_length", 16, "--num_train_epochs", 2, "--per_device_train_batch_size", 8,
            "--per_device_eval_batch_size", 5, "--learning_rate", 1e-3, "--save_strategy", "no",
            "--report_to", "none", "--seed", 1, "--disable_tqdm", "true", *extra]


def test_recipe_end_to_end_and_answer_questions_reproduces_its_predictions(tiny_encoder_dir, tmp_path):
    out = tmp_path / "squad"
    data = FIXTURES / "qa_squad_v1.json"
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--test_file", data, "--do_predict", "--use_cpu",
                            "--head_learning_rate", 1e-2))
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_exact_match", "eval_f1", "test_exact_match", "test_f1"):
        assert 0.0 <= results[key] <= 100.0, key
    assert results["eval_questions"] == 13 and results["eval_windows"] > 13
    predicted = json.loads((out / "predictions.json").read_text())
    dataset = read_squad_json(data)
    assert list(predicted) == list(dataset["id"])
    assert json.loads((out / "test_predictions.json").read_text()) == predicted
    config = json.loads((out / "config.json").read_text())
    assert (config["max_seq_length"], config["doc_stride"], config["max_question_length"]) == (48, 8, 16)
    # The library call answers as the recipe's evaluation did (same windows and search, from config.json) ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QaDataWarning)
        answers = answer_questions(out, dataset["question"], dataset["context"], batch_size=3)
    assert [a["answer"] for a in answers] == [predicted[i] for i in dataset["id"]]
    for answer, context in zip(answers, dataset["context"]):
        assert context[answer["start"]:answer["end"]] == answer["answer"] and 0 < answer["score"] <= 1
    # ... and the recipe's scores are qa_scores of its predictions.
    references = dict(zip(dataset["id"], (a["text"] for a in dataset["answers"])))
    assert qa_scores(predicted, references)["f1"] == pytest.approx(results["eval_f1"])
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert all(nbest[i][0]["text"] == predicted[i] for i in predicted)


def test_recipe_version_2_writes_null_odds(tiny_encoder_dir, tmp_path):
    out = tmp_path / "squad2"
    run_recipe(*common_args(tiny_encoder_dir, out, FIXTURES / "qa_squad_v2.json", "--version_2_with_negative",
                            "--null_score_diff_threshold", -1e9, "--use_cpu"))
    results = json.loads((out / "all_results.json").read_text())
    # With a threshold of -1e9 the model always abstains: EM = the share of unanswerable questions.
    assert results["eval_exact_match"] == pytest.approx(40.0) and results["eval_no_answer_exact_match"] == 100.0
    assert set(json.loads((out / "predictions.json").read_text()).values()) == {""}
    assert len(json.loads((out / "null_odds.json").read_text())) == 5


@pytest.mark.slow
def test_recipe_under_accelerate_with_two_processes(tiny_encoder_dir, tmp_path):
    """Two CPU processes (DistributedDataParallel, gloo): evaluation windows are gathered in order, so the scores
    and predictions equal a single-process pass over the saved model."""
    out = tmp_path / "ddp"
    data = FIXTURES / "qa_squad_v1.json"
    launcher = (PYTHON, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no")
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--per_device_train_batch_size", 4), launcher=launcher)
    predicted = json.loads((out / "predictions.json").read_text())
    dataset = read_squad_json(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QaDataWarning)
        answers = answer_questions(out, dataset["question"], dataset["context"])
    assert [a["answer"] for a in answers] == [predicted[i] for i in dataset["id"]]


def test_recipe_lora_saves_a_merged_model_that_answers_as_the_adapted_one(tiny_encoder_dir, tmp_path):
    out, again = tmp_path / "lora", tmp_path / "again"
    data = FIXTURES / "qa_squad_v1.json"
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--lora", "--lora_r", 4, "--use_cpu"))
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    windows = ["--max_seq_length", 48, "--doc_stride", 8, "--max_question_length", 16]
    run_recipe("--model_name_or_path", out, "--output_dir", again, "--validation_file", data, "--do_eval",
               *windows, "--per_device_eval_batch_size", 5, "--report_to", "none", "--use_cpu")
    adapted, merged = (json.loads((d / "eval_results.json").read_text()) for d in (out, again))
    assert merged["eval_f1"] == adapted["eval_f1"] and merged["eval_exact_match"] == adapted["eval_exact_match"]
    assert (json.loads((again / "predictions.json").read_text())
            == json.loads((out / "predictions.json").read_text()))
