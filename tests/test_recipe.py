"""hf_bert_tasks.recipe (RecipeChecks): the checks and quiet defaults every recipe run shares, alone and through the recipes
(tiny random encoder, subprocesses)."""

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import subprocess
import warnings

import pytest
from transformers import BertConfig, DebertaV2Config, RobertaConfig, TrainerControl, TrainerState, TrainingArguments

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.files import check_tokenizer_files
from hf_bert_tasks.recipe import (
    LoggingStepsCallback,
    RecipeChecks,
    RunArguments,
    ScoredOnTrainingDataWarning,
    UnknownTokensWarning,
    check_max_seq_length,
    check_run_arguments,
    check_span_memory,
    check_training_answers,
    log_and_save,
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


def test_a_span_models_training_step_that_would_not_fit_is_refused_with_the_estimate():
    from hf_bert_tasks.modeling.configuration_bert_global_pointer import BertGlobalPointerConfig

    types = {i: f"T{i}" for i in range(10)}
    span = BertGlobalPointerConfig(encoder=tiny_bert_config(), id2label=types, label2id={v: k for k, v in types.items()})
    # 8 x 10 x 512 x 512 scores x 48 bytes = 0.94 GB: refused with 1 GB of memory, accepted with 2 GB
    with pytest.raises(ValueError) as info:
        check_span_memory(span, 512, 8, memory=2**30)
    message = str(info.value)
    assert "needs about 0.9 GB for its span scores (10 types x 512 x 512 per window" in message
    assert "--per_device_train_batch_size 8" in message and "1.0 GB here" in message
    check_span_memory(span, 512, 8, memory=2 * 2**30)
    check_span_memory(span, 256, 8, memory=2**30)  # a quarter of the scores
    crf = BertConfig(num_labels=10)
    check_span_memory(crf, 512, 8, memory=1)  # only span models are checked


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
    import hf_bert_tasks.recipe as checks

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


# ---------------------------------------------------------------------------------------------- through the recipes

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
COMMON = ["--save_strategy", "no", "--report_to", "none", "--seed", 1, "--disable_tqdm", "true"]
NOISE = ("pin_memory", "pooler", "UNEXPECTED", "PAD/BOS/EOS", "-DOCSTART-")


def run(recipe, *args, check=True):
    result = subprocess.run([PYTHON, str(ROOT / "recipes" / recipe), *map(str, COMMON), *map(str, args)],
                            capture_output=True, text=True, env=ENV, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# Tab-separated, a token with a space, no -DOCSTART-, and invalid BIO in train (2 tags, 2 sentences) and test (1).
NER_TRAIN = "".join(
    f"New York\tB-LOC\nis\tO\nbig\tO\n\nmary\tI-PER\nsmith\tI-PER\nvisited\tO\nparis\tB-LOC\n\n"
    f"the\tO\nbank\tB-ORG\ngroup\tI-ORG\nmet\tO\njohn\tI-PER\n\n" for _ in range(8))
NER_TEST = "john\tB-PER\nvisited\tO\nparis\tB-LOC\n\nthe\tO\nbank\tI-ORG\n"
RECIPE_DATA = {
    "ner.py": lambda tmp: ["--train_file", write(tmp / "train.tsv", NER_TRAIN), "--validation_file",
                           write(tmp / "test.tsv", NER_TEST), "--test_file", tmp / "test.tsv",
                           "--column_separator", "tab", "--repair_tags", "--max_seq_length", 16, "--stride", 4],
    "classify.py": lambda tmp: ["--train_file", FIXTURES / "classify_news_train.txt",
                                "--validation_file", FIXTURES / "classify_news_dev.txt", "--max_seq_length", 16],
    "pretrain.py": lambda tmp: ["--train_files", write(tmp / "corpus.txt", "john visited paris on monday .\n" * 6),
                                "--validation_file", tmp / "corpus.txt", "--max_seq_length", 16],
    "qa.py": lambda tmp: ["--train_file", FIXTURES / "qa_squad_v1.json", "--validation_file",
                          FIXTURES / "qa_squad_v1.json", "--max_seq_length", 48, "--doc_stride", 8,
                          "--max_question_length", 16],
}


@pytest.mark.parametrize("recipe", sorted(RECIPE_DATA))
def test_every_recipe_runs_quietly_logs_the_loss_and_reports_unknown_tokens(recipe, tiny_encoder_dir, tmp_path):
    out = tmp_path / "out"
    result = run(recipe, "--model_name_or_path", tiny_encoder_dir, "--output_dir", out, *RECIPE_DATA[recipe](tmp_path),
                 "--do_train", "--do_eval", "--num_train_epochs", 1, "--per_device_train_batch_size", 4)
    for noise in NOISE:
        assert noise not in result.stderr, (noise, result.stderr[-3000:])
    # No --logging_steps: a run of a few steps still logs its training loss (transformers' default is every 500).
    assert result.stdout.count("{'loss': ") >= 2, result.stdout[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    assert 0.0 <= results["train_unk_share"] < 1.0 and results["train_tokens"] > 0
    assert json.loads((out / "data_results.json").read_text())["train_unk_share"] == results["train_unk_share"]
    if recipe == "ner.py":  # the repaired files are counted, the test file too
        assert (results["train_repaired_tags"], results["train_repaired_sentences"]) == (16, 16)
        assert (results["validation_repaired_tags"], results["test_repaired_tags"]) == (1, 1)
        assert "train.tsv: repaired 16 tag(s) in 16 of 24 sentences" in result.stderr
        assert "test.tsv: repaired 1 tag(s) in 1 of 2 sentences" in result.stderr


@pytest.mark.parametrize("recipe", [*sorted(RECIPE_DATA), "ner.py --head global_pointer"])
def test_every_recipe_trains_under_bf16_on_the_cpu_with_finite_losses_and_saves_float32(recipe, tiny_encoder_dir,
                                                                                       tmp_path):
    """`--bf16` (autocast on the CPU, issue 26): every recipe and head trains with finite losses, and the saved
    weights stay float32 (the CRF and the span head compute outside autocast)."""
    import math

    script, *extra = recipe.split()
    out = tmp_path / "out"
    run(script, "--model_name_or_path", tiny_encoder_dir, "--output_dir", out, *RECIPE_DATA[script](tmp_path), *extra,
        "--do_train", "--bf16", "--max_steps", 2, "--logging_steps", 1, "--per_device_train_batch_size", 4)
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} <= {"F32", "BOOL", "I64"}


def test_the_unknown_token_warning_names_the_vocabulary_tool(tiny_encoder_dir, tmp_path):
    # MSRA-like characters the tiny vocabulary lacks: most pieces are [UNK].
    train = write(tmp_path / "zh.txt", "".join("龍\tB-LOC\n鳳\tI-LOC\n凰\tO\n王\tO\n\n" for _ in range(8)))
    result = run("ner.py", "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out",
                 "--train_file", train, "--do_train", "--max_steps", 1)
    assert "UnknownTokensWarning: 75.0% of the training word pieces are [UNK]" in result.stderr
    assert "python -m hf_bert_tasks.vocab mine" in result.stderr


@pytest.mark.parametrize("recipe", sorted(RECIPE_DATA))
def test_max_seq_length_above_the_encoder_positions_is_refused_before_tokenizing(recipe, tiny_encoder_dir, tmp_path):
    args = [arg for arg in RECIPE_DATA[recipe](tmp_path)]
    args[args.index("--max_seq_length") + 1] = 1024  # the tiny encoder has 512 positions
    result = run(recipe, "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out", *args,
                 "--do_train", check=False)
    assert result.returncode != 0
    assert "ValueError: --max_seq_length 1024 is longer than the encoder can read" in result.stderr
    assert "512 positions" in result.stderr and "Map" not in result.stderr


def test_the_ner_recipe_refuses_a_span_batch_beyond_the_memory_before_tokenizing(tiny_encoder_dir, tmp_path):
    args = [arg for arg in RECIPE_DATA["ner.py"](tmp_path)]
    args[args.index("--max_seq_length") + 1] = 512
    result = run("ner.py", "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out", *args,
                 "--head", "global_pointer", "--per_device_train_batch_size", 100_000, "--do_train", check=False)
    assert result.returncode != 0
    assert "ValueError: a training step of this span model needs about" in result.stderr
    assert "Map" not in result.stderr and not (tmp_path / "out" / "model.safetensors").exists()


def test_ner_recipe_refuses_invalid_tags_without_repair_and_names_the_line(tiny_encoder_dir, tmp_path):
    args = [arg for arg in RECIPE_DATA["ner.py"](tmp_path) if arg != "--repair_tags"]
    result = run("ner.py", "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out", *args,
                 "--do_train", check=False)
    assert result.returncode != 0
    expected = f"{tmp_path / 'train.tsv'}:5: 16 of 24 sentences are not valid BIO: line 5: I-PER follows the start"
    assert expected in result.stderr
    assert "--repair_tags" in result.stderr


def test_qa_recipe_says_no_training_question_is_left(tiny_encoder_dir, tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "john smith visited paris on monday .", "qas": [
        {"id": "a", "question": "when ?", "answers": [{"text": "on friday", "answer_start": 3}]}]}]}]}
    train = write(tmp_path / "train.json", json.dumps(data))
    result = run("qa.py", "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out",
                 "--train_file", train, "--do_train", "--max_seq_length", 48, "--doc_stride", 8,
                 "--max_question_length", 16, check=False)
    assert result.returncode != 0
    assert f"{train}: no training question is left of 1" in result.stderr
    assert "No columns in the dataset" not in result.stderr


# ------------------------------------------------------------------------------------------------------ run arguments


@dataclasses.dataclass
class DataArgs:
    """The data fields the recipes share (pretrain.py has train_files and no test_file: `PretrainDataArgs`)."""

    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    dataset_name: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None


@dataclasses.dataclass
class PretrainDataArgs:
    train_files: list[str] | None = None
    validation_file: str | None = None
    dataset_name: str | None = None


def training_args(tmp_path, *flags, **kwargs):
    flags = {flag: True for flag in flags}
    return TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, **flags, **kwargs)


@pytest.mark.parametrize("flags, data, message", [
    ((), DataArgs(train_file="t"), "nothing to do: give --do_train, --do_eval or --do_predict"),
    (("do_train",), DataArgs(), "--do_train needs training data: give --train_file (or --dataset_name)"),
    (("do_train", "do_predict"), DataArgs(train_file="t"), "--do_predict needs test data: give --test_file"),
    (("do_eval",), DataArgs(train_file="t", test_file="x"), "--do_eval needs validation data: give --validation_file"),
    (("do_train",), PretrainDataArgs(), "--do_train needs training data: give --train_files"),
    (("do_train", "do_predict"), PretrainDataArgs(train_files=["t"]), "--do_predict: this recipe reads no test data"),
    (("do_train",), DataArgs(train_file="t", max_train_samples=0), "--max_train_samples 0 leaves no example"),
    (("do_eval",), DataArgs(validation_file="v", max_eval_samples=-1), "--max_eval_samples -1 leaves no example"),
], ids=["nothing", "no-train", "predict-no-test", "eval-no-validation", "pretrain-no-files", "pretrain-predict",
        "zero-samples", "negative-samples"])
def test_run_arguments_that_would_fail_late_are_refused_first(tmp_path, flags, data, message):
    with pytest.raises(ValueError) as info:
        check_run_arguments(training_args(tmp_path, *flags), data)
    assert str(info.value).startswith(message), str(info.value)


def test_a_hub_data_set_stands_for_every_split_until_it_is_read(tmp_path):
    from datasets import Dataset, DatasetDict

    args = training_args(tmp_path, "do_train", "do_eval", "do_predict")
    check_run_arguments(args, DataArgs(dataset_name="conll2003"))
    checks = RecipeChecks(args, DataArgs(dataset_name="conll2003"), argv=[])
    rows = Dataset.from_dict({"x": [1]})
    with pytest.raises(ValueError, match="--do_predict needs a test split; the data have train, validation"):
        checks.data_read(DatasetDict({"train": rows, "validation": rows}))
    checks.data_read(DatasetDict({"train": rows, "validation": rows, "test": rows}))


def test_scores_on_the_training_file_are_named_training_scores(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("pos\tgood\nneg\tbad\n")
    copy = tmp_path / "copy.txt"
    shutil.copy(train, copy)
    other = tmp_path / "other.txt"
    other.write_text("pos\tfine\nneg\tbad\n")
    args = training_args(tmp_path, "do_train", "do_eval", "do_predict")
    trained_on = r"--validation_file .*train.txt is the training file .*: the eval scores are scores on the data the"
    with pytest.warns(ScoredOnTrainingDataWarning, match=trained_on):
        check_run_arguments(args, DataArgs(train_file=str(train), validation_file=str(train), test_file=str(other)))
    with pytest.warns(ScoredOnTrainingDataWarning, match=r"--test_file .*copy.txt is the training file"):
        check_run_arguments(args, DataArgs(train_file=str(train), validation_file=str(other), test_file=str(copy)))
    with pytest.warns(ScoredOnTrainingDataWarning, match="the eval scores"):  # pretrain.py: one of several files
        check_run_arguments(training_args(tmp_path, "do_train", "do_eval"),
                            PretrainDataArgs(train_files=[str(other), str(train)], validation_file=str(copy)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_run_arguments(args, DataArgs(train_file=str(train), validation_file=str(other), test_file=str(other)))
        # Without training there are no training scores to mistake.
        check_run_arguments(training_args(tmp_path, "do_eval"), DataArgs(train_file=str(train),
                                                                          validation_file=str(train)))


def save_trained_model(folder, labels):
    from transformers import BertForTokenClassification

    config = tiny_bert_config(num_labels=len(labels), id2label=dict(enumerate(labels)))
    BertForTokenClassification(config).save_pretrained(folder)


def test_an_output_dir_holding_a_model_is_kept_unless_the_user_says_so(tmp_path):
    out = tmp_path / "out"
    save_trained_model(out, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    data = DataArgs(train_file="t")
    with pytest.raises(ValueError) as info:
        check_run_arguments(training_args(tmp_path, "do_train"), data)
    message = str(info.value)
    assert message.startswith(f"--output_dir {out} holds a trained model (BertForTokenClassification, 5 labels, "
                              "model.safetensors): training would replace it. Pass --overwrite_output_dir"), message
    check_run_arguments(training_args(tmp_path, "do_train"), data, overwrite_output_dir=True)
    with pytest.raises(ValueError, match="--resume_from_checkpoint last: no complete checkpoint in"):
        check_run_arguments(training_args(tmp_path, "do_train", resume_from_checkpoint="last"), data)
    check_run_arguments(training_args(tmp_path, "do_eval"), DataArgs(validation_file="v"))  # writes no model
    # Checkpoints alone (a run that was killed) are kept too, each named.
    for name in ("model.safetensors", "config.json"):
        (out / name).unlink()
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-5").mkdir()
    with pytest.raises(ValueError, match=r"holds 2 checkpoints \(checkpoint-5, checkpoint-10\): training would "
                                         r"replace .*--resume_from_checkpoint last"):
        check_run_arguments(training_args(tmp_path, "do_train"), data)
    with pytest.raises(ValueError, match="no complete checkpoint in .*checkpoint-10: no trainer_state.json"):
        check_run_arguments(training_args(tmp_path, "do_train", resume_from_checkpoint="last"), data)
    shutil.rmtree(out)
    out.mkdir()
    (out / "all_results.json").write_text("{}")  # results of an evaluation are no model
    check_run_arguments(training_args(tmp_path, "do_train"), data)


def test_training_data_with_one_answer_are_refused():
    with pytest.raises(ValueError, match=r"train.csv: every training text is labelled 'pos' \(12 of them\): a model "
                                         r"trained on these data can only ever answer that"):
        check_training_answers({"pos": 12}, "train.csv", "every training text is labelled")
    with pytest.raises(ValueError, match=r"every training word is tagged 'O' \(30 of them\)"):
        check_training_answers({"O": 30, "PER": 0}, "train.conll", "every training word is tagged")
    with pytest.raises(ValueError, match=r"'nothing' \(0 of them\)"):
        check_training_answers({}, "empty", "every training text is labelled")
    check_training_answers({"O": 30, "PER": 1}, "train.conll", "every training word is tagged")


def test_per_type_scores_of_many_types_go_to_the_files_only(tmp_path, tiny_encoder_dir):
    from transformers import BertForTokenClassification, Trainer

    trainer = Trainer(model=BertForTokenClassification.from_pretrained(tiny_encoder_dir, num_labels=3),
                      args=training_args(tmp_path))
    few = {"eval_f1": 0.5, "eval_macro_f1": 0.4, **{f"eval_T{i}_f1": i / 10 for i in range(10)}}
    many = {"eval_f1": 0.5, "eval_loss": 1.25, **{f"eval_TYPE{i:03d}_f1": (i % 97) / 100 for i in range(300)}}
    for metrics, printed_lines in ((few, 12), (many, 3)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            log_and_save(trainer, "eval", metrics)
        lines = [line for line in out.getvalue().splitlines() if " = " in line]
        assert len(lines) == printed_lines, out.getvalue()
        assert json.loads((tmp_path / "out" / "eval_results.json").read_text()) == pytest.approx(metrics)
    summary = "eval_per_type_f1 = 300 types, in eval_results.json; lowest: TYPE000 0.0000, TYPE097 0.0000"
    assert summary in out.getvalue()


def ner_file(path, tagged=True):
    """Six sentences of three words; with `tagged`, each names a person."""
    words = [("Anna", "B-PER" if tagged else "O"), ("met", "O"), ("Bo", "O")]
    path.write_text("\n".join(["".join(f"{token}\t{tag}\n" for token, tag in words)] * 6))
    return path


def test_recipes_refuse_bad_runs_before_any_work(tiny_encoder_dir, tmp_path):
    """Each fails within seconds, before a model is loaded or anything is written."""
    train = ner_file(tmp_path / "train.tsv")
    out = tmp_path / "out"
    cases = [
        ("ner.py", ["--train_file", train, "--do_train", "--do_predict"], "--do_predict needs test data"),
        ("ner.py", ["--validation_file", train, "--do_eval", "--max_eval_samples", 0],
         "--max_eval_samples 0 leaves no example"),
        ("classify.py", ["--train_file", FIXTURES / "classify_news_train.txt", "--do_train", "--do_eval"],
         "--do_eval needs validation data"),
        ("qa.py", ["--train_file", FIXTURES / "qa_squad_v1.json", "--do_train", "--max_train_samples", 0],
         "--max_train_samples 0 leaves no example"),
        ("pretrain.py", ["--do_train"], "--do_train needs training data: give --train_files"),
        ("distill.py", ["--train_file", train, "--do_train", "--do_predict", "--teacher_name_or_path",
                        tiny_encoder_dir, "--student_layers", 1], "--do_predict needs test data"),
    ]
    for recipe, args, message in cases:
        model = [] if recipe == "distill.py" else ["--model_name_or_path", tiny_encoder_dir]
        result = run(recipe, *model, "--output_dir", out, *args, check=False)
        assert result.returncode != 0 and f"ValueError: {message}" in result.stderr, (recipe, result.stderr[-2000:])
        assert "Loading weights" not in result.stderr and not out.exists(), recipe


def test_ner_recipe_keeps_a_trained_model_and_refuses_data_without_an_entity(tiny_encoder_dir, tmp_path):
    out = tmp_path / "out"
    train = ner_file(tmp_path / "train.tsv")
    common = ["--model_name_or_path", tiny_encoder_dir, "--output_dir", out, "--do_train", "--max_steps", 1,
              "--max_seq_length", 16, "--stride", 4]
    run("ner.py", *common, "--train_file", train)
    weights = (out / "model.safetensors").read_bytes()
    # The same folder again, with other data: refused, naming the model there; the weights are untouched.
    result = run("ner.py", *common, "--train_file", SAMPLE / "en_train.conll", check=False)
    assert result.returncode != 0
    assert f"--output_dir {out} holds a trained model (BertCrfForTokenClassification, 3 labels" in result.stderr
    assert (out / "model.safetensors").read_bytes() == weights
    # A file without an entity: refused (it trained a model that only ever says "O").
    untagged = ner_file(tmp_path / "untagged.tsv", tagged=False)
    result = run("ner.py", *common, "--train_file", untagged, "--overwrite_output_dir", check=False)
    assert result.returncode != 0
    assert f"{untagged}: every training word is tagged 'O' (18 of them)" in result.stderr
    assert (out / "model.safetensors").read_bytes() == weights


def test_classify_recipe_refuses_a_one_class_training_file(tiny_encoder_dir, tmp_path):
    train = tmp_path / "one_class.txt"
    train.write_text("".join(f"sports\tthe team won game {i}\n" for i in range(8)))
    result = run("classify.py", "--model_name_or_path", tiny_encoder_dir, "--output_dir", tmp_path / "out",
                 "--train_file", train, "--do_train", check=False)
    assert result.returncode != 0
    assert f"{train}: every training text is labelled 'sports' (8 of them)" in result.stderr
