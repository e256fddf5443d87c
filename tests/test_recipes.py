"""The recipe contract (hf_bert_tasks/recipe.py), through every recipe: evaluation in data order under any training
sampler, the shared new-layers learning rate and its deprecated alias; and --help of every recipe and command line."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import warnings

import pytest

from conftest import PYTHON, ROOT

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
FIXTURES = ROOT / "tests" / "fixtures"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
COMMON = ["--save_strategy", "no", "--report_to", "none", "--seed", 1, "--use_cpu", "--disable_tqdm", "true"]


def run(recipe, *args):
    result = subprocess.run([PYTHON, str(ROOT / "recipes" / recipe), *map(str, COMMON), *map(str, args)],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


# recipe, its data flags, the training flags, the files of predictions it writes.
RECIPES = {
    "ner": ("ner.py", ["--train_file", SAMPLE / "en_train.conll", "--validation_file", SAMPLE / "en_dev.conll",
                       "--test_file", SAMPLE / "en_dev.conll", "--max_seq_length", 24, "--stride", 4],
            ["--max_train_samples", 96, "--learning_rate", 1e-3, "--head_learning_rate", 1e-2],
            ["test_predictions.txt"]),
    "classify": ("classify.py", ["--train_file", FIXTURES / "classify_news_train.txt",
                                 "--validation_file", FIXTURES / "classify_news_dev.txt",
                                 "--test_file", FIXTURES / "classify_news_dev.txt", "--max_seq_length", 16],
                 ["--learning_rate", 1e-3, "--head_learning_rate", 1e-2],
                 ["test_predictions.tsv"]),
    "qa": ("qa.py", ["--train_file", FIXTURES / "qa_squad_v1.json", "--validation_file", FIXTURES / "qa_squad_v1.json",
                     "--test_file", FIXTURES / "qa_squad_v1.json", "--max_seq_length", 48, "--doc_stride", 8,
                     "--max_question_length", 16],
           ["--learning_rate", 1e-3, "--head_learning_rate", 1e-2],
           ["predictions.json", "nbest_predictions.json", "test_predictions.json"]),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("task", sorted(RECIPES))
def test_scores_under_grouped_batches_equal_an_in_order_evaluation(task, tiny_encoder_dir, tmp_path):
    """Train with length-grouped batches and score; score the saved model again with the plain sampler: the scores
    and every written prediction must be the same (small evaluation batches, so a reordering would show)."""
    recipe, data, training, outputs = RECIPES[task]
    grouped, ordered = tmp_path / "grouped", tmp_path / "ordered"
    run(recipe, "--model_name_or_path", tiny_encoder_dir, "--output_dir", grouped, *data, *training,
        "--do_train", "--do_eval", "--do_predict", "--num_train_epochs", 2, "--per_device_train_batch_size", 4,
        "--per_device_eval_batch_size", 2, "--train_sampling_strategy", "group_by_length")
    run(recipe, "--model_name_or_path", grouped, "--output_dir", ordered, *data, "--do_eval", "--do_predict",
        "--per_device_eval_batch_size", 2)
    first = json.loads((grouped / "all_results.json").read_text())
    second = json.loads((ordered / "all_results.json").read_text())
    scores = sorted(key for key in first if key.startswith(("eval_", "test_")) and not key.endswith(
        ("_runtime", "_per_second", "_loss")))
    assert len(scores) >= 4, first
    assert {key: first[key] for key in scores} == pytest.approx({key: second[key] for key in scores}, abs=1e-9)
    for name in outputs:
        assert (grouped / name).read_text(encoding="utf-8") == (ordered / name).read_text(encoding="utf-8"), name


def test_crf_learning_rate_is_a_deprecated_alias_of_head_learning_rate():
    from hf_bert_tasks.recipe import FineTuneArguments

    with pytest.warns(FutureWarning, match="--head_learning_rate"):
        args = FineTuneArguments(crf_learning_rate=5e-3)
    assert args.head_learning_rate == 5e-3 and args.crf_learning_rate is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FineTuneArguments(head_learning_rate=1e-3).head_learning_rate == 1e-3
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="disagree"):
        FineTuneArguments(crf_learning_rate=5e-3, head_learning_rate=1e-3)


def test_every_recipe_takes_the_same_shared_flags():
    """One name for the new layers' learning rate in every recipe's --help, the alias marked deprecated."""
    for recipe in ("ner.py", "classify.py", "qa.py"):
        result = subprocess.run([PYTHON, str(ROOT / "recipes" / recipe), "--help"], capture_output=True, text=True,
                                env=ENV, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        text = " ".join(result.stdout.split())
        for flag in ("--head_learning_rate", "--freeze_encoder_epochs", "--max_train_samples", "--max_eval_samples",
                     "--max_predict_samples", "--lora_r"):
            assert flag in text, (recipe, flag)
        assert "--crf_learning_rate" in text and "Deprecated alias of --head_learning_rate" in text, recipe


def test_a_saved_threshold_of_zero_is_kept_by_recipe_and_predictor(tiny_encoder_dir):
    """One threshold rule: explicit value, else the model's saved `classification_threshold` (0.0 included), else
    0.5; the recipe and `TextClassifier` both call it (the recipe once turned a saved 0.0 into 0.5)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from conftest import tiny_bert_config
    from hf_bert_tasks.classification.predictor import TextClassifier, resolve_threshold

    config = BertConfig(**{**tiny_bert_config().to_dict(), "num_labels": 2,
                           "problem_type": "multi_label_classification", "classification_threshold": 0.0})
    assert resolve_threshold(config) == 0.0
    assert resolve_threshold(config, 0.7) == 0.7
    assert resolve_threshold(BertConfig()) == 0.5 and resolve_threshold(None) == 0.5
    classifier = TextClassifier(BertForSequenceClassification(config), AutoTokenizer.from_pretrained(tiny_encoder_dir))
    assert classifier.threshold == 0.0
    # Every label reaches probability >= 0: with threshold 0.0 every label is predicted.
    assert sorted(classifier("the bank said")["label"]) == sorted(config.id2label.values())


# -------------------------------------------------------------------------------------------------------------- --help

# Every recipe with the argument dataclasses it parses besides TrainingArguments, and every command line of the package.
HELP_RECIPES = {
    "ner.py": ("ModelArguments", "DataArguments", "LoraArguments", "FineTuneArguments"),
    "classify.py": ("ModelArguments", "DataArguments", "LoraArguments", "FineTuneArguments"),
    "qa.py": ("ModelArguments", "DataArguments", "LoraArguments", "FineTuneArguments"),
    "pretrain.py": ("ModelArguments", "DataArguments", "LoraArguments"),
    "distill.py": ("DistillationArguments", "DataArguments", "FineTuneArguments"),
}
HELP_COMMANDS = {
    "predictor": ["hf_bert_tasks.predictor"],
    "hub": ["hf_bert_tasks.hub"],
    "hub push-model": ["hf_bert_tasks.hub", "push-model"],
    "hub push-space": ["hf_bert_tasks.hub", "push-space"],
    "vocab": ["hf_bert_tasks.vocab"],
    "vocab mine": ["hf_bert_tasks.vocab", "mine"],
    "vocab expand": ["hf_bert_tasks.vocab", "expand"],
    "export": ["hf_bert_tasks.export"],
}


def recipe_module(recipe):
    spec = importlib.util.spec_from_file_location(f"recipe_{recipe[:-3]}", ROOT / "recipes" / recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", [*HELP_RECIPES, *HELP_COMMANDS])
def test_help_documents_every_flag(name):
    """`--help` exits 0 and, for a recipe, names every field of its argument dataclasses with that field's help text
    (and TrainingArguments' flags)."""
    if name in HELP_RECIPES:
        command = [PYTHON, str(ROOT / "recipes" / name), "--help"]
    else:
        command = [PYTHON, "-m", *HELP_COMMANDS[name], "--help"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert text.startswith("usage:"), text[:200]
    if name not in HELP_RECIPES:
        assert f"python -m {HELP_COMMANDS[name][0]}" in text
        return
    flat = " ".join(text.split())
    module = recipe_module(name)
    for dataclass in (getattr(module, arguments) for arguments in HELP_RECIPES[name]):
        for field in dataclasses.fields(dataclass):
            assert f"--{field.name}" in text, (dataclass.__name__, field.name)
            assert field.metadata.get("help"), (dataclass.__name__, field.name)
            assert " ".join(field.metadata["help"].split())[:30] in flat, (dataclass.__name__, field.name)
    assert "--per_device_train_batch_size" in text  # TrainingArguments
