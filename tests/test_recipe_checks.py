"""hf_bert_tasks.recipe_checks: the checks and quiet defaults every recipe run shares, alone and through the recipes
(tiny random encoder, subprocesses)."""

import json
import logging
import os
import subprocess
import warnings

import pytest
from transformers import BertConfig, DebertaV2Config, RobertaConfig, TrainerControl, TrainerState, TrainingArguments

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.recipe_checks import (
    LoggingStepsCallback,
    RecipeChecks,
    UnknownTokensWarning,
    check_max_seq_length,
    check_tokenizer_files,
    default_logging_steps,
    logging_steps_given,
    position_limit,
    quiet_loading_reports,
    unknown_token_share,
)

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
FIXTURES = ROOT / "tests" / "fixtures"


# ---------------------------------------------------------------------------------------------------------- positions


def test_position_limits_of_encoder_families():
    from hf_bert_tasks.modeling.configuration_bert_crf import BertCrfConfig

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # ids start at 2
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None  # relative positions only
    crf = BertCrfConfig(encoder=tiny_bert_config(max_position_embeddings=64), id2label={0: "O"}, label2id={"O": 0})
    assert position_limit(crf) == 64


def test_max_seq_length_above_the_positions_is_refused_with_the_limit():
    config = BertConfig(max_position_embeddings=512)
    check_max_seq_length(512, config)
    with pytest.raises(ValueError) as info:
        check_max_seq_length(1024, config)
    message = str(info.value)
    assert message.startswith("--max_seq_length 1024 is longer than the encoder can read")
    assert "512 positions" in message and "--max_seq_length 512 or less" in message


# ---------------------------------------------------------------------------------------------------- unknown tokens


class FakeTrainer:
    """What RecipeChecks.attach uses of a Trainer."""

    def __init__(self, tokenizer, train_dataset, output_dir):
        from transformers import TrainingArguments

        self.args = TrainingArguments(output_dir=str(output_dir), report_to="none", do_train=True)
        self.processing_class, self.train_dataset, self.model = tokenizer, train_dataset, None
        self.callbacks, self.saved = [], {}

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def log_metrics(self, split, metrics):
        pass

    def save_metrics(self, split, metrics):
        self.saved[split] = dict(metrics)


def test_unknown_token_share_leaves_special_tokens_out_and_warns_above_five_percent(tmp_path):
    from datasets import Dataset

    tokenizer = tiny_tokenizer()
    known = tokenizer(["the bank", "paris"])["input_ids"]  # [CLS] ... [SEP]: 3 word pieces, no [UNK]
    assert unknown_token_share(tokenizer, known) == {"train_unk_share": 0.0, "train_unk_tokens": 0, "train_tokens": 3}
    rows = tokenizer(["the 龍 bank", "鳳凰 paris"])["input_ids"]  # characters the tiny vocabulary lacks
    counts = unknown_token_share(tokenizer, rows)
    assert counts == {"train_unk_share": 0.5, "train_unk_tokens": 3, "train_tokens": 6}
    assert unknown_token_share(tokenizer, Dataset.from_dict({"input_ids": rows})) == counts
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", do_train=True)
    trainer = FakeTrainer(tokenizer, Dataset.from_dict({"input_ids": rows}), tmp_path)
    with pytest.warns(UnknownTokensWarning, match=r"50.0% of the training word pieces are \[UNK\] \(3 of 6\).*"
                                                  r"python -m hf_bert_tasks.vocab mine"):
        metrics = RecipeChecks(args, argv=[]).attach(trainer, test_repaired_tags=2)
    assert metrics == trainer.saved["data"] == {**counts, "test_repaired_tags": 2}
    assert [type(c) for c in trainer.callbacks] == [LoggingStepsCallback]
    trainer = FakeTrainer(tokenizer, Dataset.from_dict({"input_ids": known}), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownTokensWarning)
        RecipeChecks(args, argv=["--logging_steps", "5"]).attach(trainer)
    assert trainer.callbacks == [] and trainer.saved["data"]["train_unk_share"] == 0.0


# ----------------------------------------------------------------------------------------------------- logging steps


@pytest.mark.parametrize("argv, given", [
    (["--output_dir", "x"], False),
    (["--logging_steps", "10"], True),
    (["--logging_steps=10"], True),
    (["--logging-steps", "10"], True),
    (["--logging_steps_extra", "1"], False),
])
def test_logging_steps_given(argv, given):
    assert logging_steps_given(argv) is given


def test_logging_steps_given_in_a_json_file_of_options(tmp_path):
    options = tmp_path / "args.json"
    options.write_text(json.dumps({"output_dir": "x", "logging_steps": 7}))
    assert logging_steps_given([str(options)])
    options.write_text(json.dumps({"output_dir": "x"}))
    assert not logging_steps_given([str(options)])


def test_about_fifty_logs_per_run_at_least_every_500_steps():
    assert [default_logging_steps(n) for n in (1, 4, 50, 51, 100, 1000, 25_000, 100_000)] == [
        1, 1, 1, 2, 2, 20, 500, 500]
    state = TrainerState(max_steps=120)
    state.logging_steps = 500
    LoggingStepsCallback().on_train_begin(None, state, TrainerControl())
    assert state.logging_steps == 3


# ------------------------------------------------------------------------------------------------- first-run noise


def test_pin_memory_is_off_without_an_accelerator(tmp_path, monkeypatch):
    import hf_bert_tasks.recipe_checks as checks

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert args.dataloader_pin_memory
    monkeypatch.setattr(checks, "_has_accelerator", lambda: True)
    RecipeChecks(args, argv=[])
    assert args.dataloader_pin_memory
    monkeypatch.setattr(checks, "_has_accelerator", lambda: False)
    RecipeChecks(args, argv=[])
    assert not args.dataloader_pin_memory


def load_report(tiny_encoder_dir, model_class_name, **kwargs):
    """What transformers' loading logger emits while loading the tiny encoder into `model_class_name`."""
    import transformers

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        getattr(transformers, model_class_name).from_pretrained(tiny_encoder_dir, **kwargs)
    finally:
        logger.removeHandler(handler)
    return [r.getMessage() for r in records if "LOAD REPORT" in r.getMessage()]


def test_the_unused_pooler_is_left_out_of_load_reports(tiny_encoder_dir, monkeypatch):
    # A clean logger: RecipeChecks, made by other tests of this process, installs the filter process-wide.
    monkeypatch.setattr(logging.getLogger("transformers.modeling_utils"), "filters", [])
    # The CRF model's encoder (no pooler): a report of nothing else is not printed at all.
    before = load_report(tiny_encoder_dir, "BertModel", add_pooling_layer=False)
    assert len(before) == 1 and "pooler.dense.weight" in before[0]
    quiet_loading_reports()
    quiet_loading_reports()  # idempotent
    assert load_report(tiny_encoder_dir, "BertModel", add_pooling_layer=False) == []
    # The softmax head: its new classifier (MISSING) is still reported, without the pooler rows and their note.
    (report,) = load_report(tiny_encoder_dir, "BertForTokenClassification", num_labels=3)
    assert "classifier.weight" in report and "MISSING" in report
    assert "pooler" not in report and "UNEXPECTED" not in report


# ------------------------------------------------------------------------------------------------- tokenizer files


def test_a_model_folder_without_tokenizer_files_is_named(tmp_path, tiny_encoder_dir):
    check_tokenizer_files(tiny_encoder_dir)
    check_tokenizer_files("someone/model-on-the-hub")  # not a folder here: transformers' business
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        check_tokenizer_files(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path} has no tokenizer files: expected tokenizer.json")
    assert "the folder holds config.json, model.safetensors" in message
