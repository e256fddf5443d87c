"""recipes/ner.py in real processes: two-process DDP on the CPU (gloo), kill -9 and resume, bf16 on the CPU.

Two processes are launched with `accelerate launch --multi_gpu --num_processes 2` and the recipe's `--use_cpu`:
accelerate's `--multi_gpu` is its torchrun launcher, and with `--use_cpu` each process runs on the CPU with the gloo
backend. (`accelerate launch --cpu --num_processes 2` starts a single process in accelerate 1.15: its CPU launcher
forks only through mpirun.) The tests assert the world size from the number of optimizer steps, so a launcher that
silently ran one process would fail them.
"""

import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForTokenClassification

from conftest import PYTHON, ROOT
from hf_bert_tasks.checkpoints import checkpoints
from hf_bert_tasks.ner.data import read_conll
from hf_bert_tasks.modeling.windows import encode_words
from hf_bert_tasks.ner.metrics import entity_scores
from hf_bert_tasks.ner.predictor import NerPredictor

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"
RECIPE = ROOT / "recipes" / "ner.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

# Runs the recipe unchanged, and after `Trainer.train` writes each rank's fingerprint of its in-memory weights.
FINGERPRINTING_RUNNER = textwrap.dedent("""
    import hashlib, json, os, runpy, sys
    import transformers

    train = transformers.Trainer.train

    def train_and_fingerprint(self, *args, **kwargs):
        result = train(self, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        digests = {name: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
                   for name, t in model.state_dict().items()}
        path = os.path.join(os.environ["FINGERPRINT_DIR"], f"rank{self.args.process_index}.json")
        with open(path, "w") as f:
            json.dump({"world_size": self.args.world_size, "digests": digests}, f)
        return result

    transformers.Trainer.train = train_and_fingerprint
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fingerprint(state_dict) -> dict[str, str]:
    return {name: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for name, t in state_dict.items()}


def write_sentences(source: Path, target: Path, count: int) -> int:
    """The first `count` sentences of a CoNLL file, as one document; returns how many were written."""
    blocks = [b for b in source.read_text(encoding="utf-8").split("\n\n") if b.strip() and "-DOCSTART-" not in b]
    target.write_text("-DOCSTART- O\n\n" + "\n\n".join(blocks[:count]) + "\n", encoding="utf-8")
    return len(blocks[:count])


def recipe_args(encoder, output_dir, *extra):
    return ["--model_name_or_path", str(encoder), "--output_dir", str(output_dir),
            "--train_file", str(SAMPLE / "en_train.conll"), "--do_train", "--report_to", "none", "--use_cpu",
            "--seed", "3", "--disable_tqdm", "true", *map(str, extra)]


def run(command, timeout=600, env=ENV):
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_two_processes_train_once_and_score_the_whole_eval_set_once(tiny_encoder_dir, tmp_path):
    # 31 sentences, 4 per device, 2 processes: the last step of evaluation is short on one rank and the sampler pads
    # it with repeated sentences, which must not be scored. 31 is no multiple of 8.
    dev = tmp_path / "dev.conll"
    assert write_sentences(SAMPLE / "en_dev.conll", dev, 31) == 31
    runner = tmp_path / "run_with_fingerprints.py"
    runner.write_text(FINGERPRINTING_RUNNER)
    out = tmp_path / "ddp"
    run([PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         str(runner), str(RECIPE),
         *recipe_args(tiny_encoder_dir, out, "--validation_file", dev, "--test_file", dev, "--do_eval",
                      "--do_predict", "--max_train_samples", 32, "--num_train_epochs", 1,
                      "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 4,
                      "--save_strategy", "no", "--head_learning_rate", 1e-2)],
        env={**ENV, "FINGERPRINT_DIR": str(tmp_path)})

    # Two processes: 32 sentences in batches of 8 per process is 2 optimizer steps (one process would take 4).
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == math.ceil(32 / (8 * 2)) == 2

    # Both ranks ended with the same weights, and the saved model is exactly those weights.
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["digests"] == ranks[1]["digests"]
    saved = AutoModelForTokenClassification.from_pretrained(out, trust_remote_code=True)
    assert fingerprint(saved.state_dict()) == ranks[0]["digests"]

    # Every eval sentence scored exactly once: the recipe's distributed scores equal one process predicting each
    # sentence of the same file with the saved model, and the gathered test predictions equal it tag for tag.
    results = json.loads((out / "all_results.json").read_text())
    sentences = read_conll(dev)
    names = sentences.features["ner_tags"].feature.names
    gold = [[names[t] for t in sentence] for sentence in sentences["ner_tags"]]
    predictor = NerPredictor.from_pretrained(str(out))
    windows = encode_words(predictor.tokenizer, sentences["tokens"], max_length=predictor.max_length,
                           stride=predictor.stride, scheme=predictor.scheme, strategy=predictor.label_strategy)
    assert len(windows["input_ids"]) % (2 * 4) != 0  # the eval samples are windows: one per sentence here
    predicted, _ = predictor.predict_words(sentences["tokens"])
    scores = entity_scores(gold, predicted, "BIO")
    assert results["eval_f1"] == scores["f1"] and results["test_f1"] == scores["f1"]
    assert results["eval_precision"] == scores["precision"] and results["eval_recall"] == scores["recall"]
    written = read_conll(out / "test_predictions.txt")
    written_names = written.features["ner_tags"].feature.names
    assert [[written_names[t] for t in sentence] for sentence in written["ner_tags"]] == predicted


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint-N (what `--resume_from_checkpoint last` takes)."""
    return next((folder for folder, problem in checkpoints(output_dir) if problem is None), None)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sigkilled_run_resumes_to_the_uninterrupted_result(tiny_encoder_dir, tmp_path, lora):
    args = ["--max_train_samples", 64, "--num_train_epochs", 1, "--per_device_train_batch_size", 2,
            "--save_strategy", "steps", "--save_steps", 8] + (["--lora", "--lora_r", 4] if lora else [])
    total_steps = 64 // 2
    run([PYTHON, str(RECIPE), *recipe_args(tiny_encoder_dir, tmp_path / "uninterrupted", *args)])
    uninterrupted = json.loads((tmp_path / "uninterrupted" / "trainer_state.json").read_text())
    assert uninterrupted["global_step"] == total_steps

    out = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    process = subprocess.Popen([PYTHON, str(RECIPE), *recipe_args(tiny_encoder_dir, out, *args)],
                               stdout=log, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.monotonic() + 600
    while last_complete_checkpoint(out) is None:
        assert process.poll() is None, "the run ended before its first checkpoint: " + (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "trainer_state.json").exists(), "the run finished before the kill: nothing was interrupted"

    checkpoint = last_complete_checkpoint(out)
    resumed_from = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    assert 0 < resumed_from < total_steps
    run([PYTHON, str(RECIPE), *recipe_args(tiny_encoder_dir, out, *args, "--resume_from_checkpoint", checkpoint)])

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == uninterrupted["global_step"] == total_steps
    # The resumed run replays the data order and RNG states: the same weights as the uninterrupted run, bit for bit.
    resumed = AutoModelForTokenClassification.from_pretrained(out, trust_remote_code=True)
    reference = AutoModelForTokenClassification.from_pretrained(tmp_path / "uninterrupted", trust_remote_code=True)
    assert fingerprint(resumed.state_dict()) == fingerprint(reference.state_dict())
    # The resumed folder is a complete model (tokenizer, config, code) that tags and scores every word as the
    # uninterrupted one does.
    words = [["Mary", "met", "John", "Smith", "in", "Paris", "."]]
    tags, scores = NerPredictor.from_pretrained(str(out)).predict_words(words)
    assert [len(tags[0]), len(scores[0])] == [len(words[0])] * 2
    assert (tags, scores) == NerPredictor.from_pretrained(str(tmp_path / "uninterrupted")).predict_words(words)


@pytest.mark.slow
def test_bf16_on_the_cpu_trains_with_a_finite_crf_loss(tiny_encoder_dir, tmp_path):
    out = tmp_path / "bf16"
    run([PYTHON, str(RECIPE), *recipe_args(
        tiny_encoder_dir, out, "--bf16", "--validation_file", SAMPLE / "en_dev.conll", "--do_eval",
        "--max_train_samples", 32, "--max_eval_samples", 16, "--num_train_epochs", 1,
        "--per_device_train_batch_size", 8, "--logging_steps", 1, "--save_strategy", "no")])
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(loss) and loss > 0 for loss in losses), losses
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["eval_loss"]) and 0.0 <= results["eval_f1"] <= 1.0
    # Autocast leaves the weights in float32: the saved model is an ordinary float32 model.
    saved = AutoModelForTokenClassification.from_pretrained(out, trust_remote_code=True)
    assert {p.dtype for p in saved.parameters()} == {torch.float32}
