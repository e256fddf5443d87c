"""hf_bert_tasks.checkpoints: a checkpoint cut off while being written is told from a complete one, and
``--resume_from_checkpoint last`` resumes from the newest complete one; real checkpoints of a tiny Trainer, broken
in every way a kill can leave them, and a recipe killed at random moments several times."""

import json
import random
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.checkpoints import IncompleteCheckpointWarning, checkpoint_problem, checkpoints, resume_checkpoint

SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"


def train_tiny(output_dir: Path, max_steps: int, resume: str | None = None, **kwargs):
    """A tiny BertForSequenceClassification trained by the Trainer, saving a checkpoint every step."""
    from datasets import Dataset
    from transformers import BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=2))
    tokenizer = tiny_tokenizer()
    texts = ["the team won", "the bank said", "the club won", "the company said"]
    data = Dataset.from_dict({**tokenizer(texts, padding=True), "labels": [0, 1, 0, 1]})
    args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, save_steps=1, per_device_train_batch_size=2,
                             report_to="none", use_cpu=True, disable_tqdm=True, seed=0, **kwargs)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """An output folder with the complete checkpoint-1 and checkpoint-2 (full model) of a two-step run."""
    out = tmp_path_factory.mktemp("checkpoints") / "run"
    train_tiny(out, max_steps=2)
    return out


def copy_run(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


def truncate(path: Path, length: int) -> None:
    with path.open("r+b") as file:
        file.truncate(length)


def test_complete_checkpoints_have_no_problem(trained):
    assert [(folder.name, problem) for folder, problem in checkpoints(trained)] == [("checkpoint-2", None),
                                                                                      ("checkpoint-1", None)]
    assert resume_checkpoint(trained, "last") == str(trained / "checkpoint-2")
    assert resume_checkpoint(trained, str(trained / "checkpoint-1")) == str(trained / "checkpoint-1")
    assert resume_checkpoint(trained, None) is None


BREAKS = {
    # name: (what is done to checkpoint-2, words of its problem)
    "empty folder": (lambda c: [p.unlink() for p in c.iterdir()], "no trainer_state.json"),
    "weights only": (lambda c: [p.unlink() for p in c.iterdir() if p.name != "model.safetensors"],
                     "no trainer_state.json"),
    "no trainer state": (lambda c: (c / "trainer_state.json").unlink(), "no trainer_state.json"),
    "trainer state cut off": (lambda c: truncate(c / "trainer_state.json", 40), "trainer_state.json is not valid JSON"),
    "trainer state empty": (lambda c: truncate(c / "trainer_state.json", 0), "trainer_state.json is not valid JSON"),
    "no weights": (lambda c: (c / "model.safetensors").unlink(), "no weights"),
    "weights cut off": (lambda c: truncate(c / "model.safetensors", (c / "model.safetensors").stat().st_size // 2),
                        "model.safetensors is cut off"),
    "weights header cut off": (lambda c: truncate(c / "model.safetensors", 4), "model.safetensors is cut off"),
    "no optimizer": (lambda c: (c / "optimizer.pt").unlink(), "no optimizer.pt"),
    "optimizer cut off": (lambda c: truncate(c / "optimizer.pt", (c / "optimizer.pt").stat().st_size - 1),
                          "optimizer.pt is cut off"),
    "random states cut off": (lambda c: truncate(c / "rng_state.pth", 100), "rng_state.pth is cut off"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_last_skips_an_incomplete_newest_checkpoint_and_says_so(trained, tmp_path, name):
    out = copy_run(trained, tmp_path)
    damage, words = BREAKS[name]
    damage(out / "checkpoint-2")
    problem = checkpoint_problem(out / "checkpoint-2")
    assert problem is not None and words in problem, problem
    with pytest.warns(IncompleteCheckpointWarning, match=r"skipping .*checkpoint-2, which is incomplete") as caught:
        assert resume_checkpoint(out, "last") == str(out / "checkpoint-1")
    assert words in str(caught[0].message)
    # Named directly, it is refused with what is wrong and the one to use instead.
    with pytest.raises(ValueError, match=r"checkpoint-2: not a complete checkpoint .* newest complete checkpoint in "
                                         r".* is .*checkpoint-1"):
        resume_checkpoint(out, str(out / "checkpoint-2"))


def test_every_file_cut_anywhere_makes_the_checkpoint_incomplete(trained, tmp_path):
    rng = random.Random(0)
    names = sorted(p.name for p in (trained / "checkpoint-2").iterdir())
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
            "config.json", "training_args.bin"} <= set(names)
    for name in names:
        # A JSON file cut only in its final line end is whole.
        size = len((trained / "checkpoint-2" / name).read_bytes().rstrip(b"\n" if name.endswith(".json") else b""))
        for length in sorted({0, 1, size - 1, *(rng.randrange(size) for _ in range(6))}):
            out = tmp_path / f"{name}-{length}"
            shutil.copytree(trained / "checkpoint-2", out)
            truncate(out / name, length)
            assert checkpoint_problem(out) is not None, (name, length, size)
            shutil.rmtree(out)


def test_the_trainer_resumes_from_what_last_picks(trained, tmp_path):
    out = copy_run(trained, tmp_path)
    truncate(out / "checkpoint-2" / "trainer_state.json", 10)
    with pytest.warns(IncompleteCheckpointWarning):
        resume = resume_checkpoint(out, "last")
    trainer = train_tiny(out, max_steps=2, resume=resume)
    assert trainer.state.global_step == 2
    assert checkpoint_problem(out / "checkpoint-2") is None  # written again, whole


def test_no_complete_checkpoint_is_an_error_naming_each(trained, tmp_path):
    out = copy_run(trained, tmp_path)
    (out / "checkpoint-1" / "trainer_state.json").unlink()
    (out / "checkpoint-2" / "model.safetensors").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteCheckpointWarning)
        with pytest.raises(ValueError, match=r"no complete checkpoint in .*\(checkpoint-2: no weights .*; "
                                             r"checkpoint-1: no trainer_state.json"):
            resume_checkpoint(out, "last")
    with pytest.raises(ValueError, match=r"no complete checkpoint in .*nothing"):
        resume_checkpoint(tmp_path / "nothing", "last")


def test_an_adapter_checkpoint_is_complete_with_its_adapter_weights(trained, tmp_path):
    out = copy_run(trained, tmp_path)
    checkpoint = out / "checkpoint-2"
    (checkpoint / "model.safetensors").rename(checkpoint / "adapter_model.safetensors")
    assert checkpoint_problem(checkpoint) is None
    truncate(checkpoint / "adapter_model.safetensors", 100)
    assert "adapter_model.safetensors is cut off" in checkpoint_problem(checkpoint)


# ------------------------------------------------------------------------------------------ a recipe killed often

ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def recipe_args(encoder, out, *extra):
    return ["--model_name_or_path", encoder, "--output_dir", out, "--train_file", SAMPLE / "en_train.conll",
            "--max_train_samples", 24, "--num_train_epochs", 1, "--per_device_train_batch_size", 2,
            "--max_seq_length", 24, "--stride", 4, "--do_train", "--save_strategy", "steps", "--save_steps", 3,
            "--report_to", "none", "--seed", 1, "--use_cpu", "--disable_tqdm", "true", *extra]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.mark.slow
def test_a_recipe_killed_at_random_moments_resumes_to_the_uninterrupted_result(tiny_encoder_dir, tmp_path):
    """Kill the NER recipe several times, while a checkpoint is being written or at a random moment; each time
    `--resume_from_checkpoint last` goes on from the newest complete checkpoint, and the end is the uninterrupted
    run's weights, bit for bit."""
    import os

    env = {**os.environ, **ENV}
    command = [PYTHON, str(ROOT / "recipes" / "ner.py")]
    reference = tmp_path / "uninterrupted"
    subprocess.run([*command, *map(str, recipe_args(tiny_encoder_dir, reference))], check=True, env=env,
                   capture_output=True, timeout=600)
    out = tmp_path / "killed"
    rng = random.Random(29)
    skipped = kills = 0
    # Rounds until three kills have landed, one of them leaving a checkpoint half-written that the next run skipped;
    # on a fast machine a run can finish before its kill, and then the next round starts over.
    for round_ in range(12):
        if kills >= 3 and skipped >= 1:
            break
        if (out / "model.safetensors").exists():
            shutil.rmtree(out)
        # Without a complete checkpoint yet, start again over what the last kill left.
        resume = (["--resume_from_checkpoint", "last"] if any(p is None for _, p in checkpoints(out))
                  else ["--overwrite_output_dir"])
        log_path = tmp_path / f"round{round_}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen([*command, *map(str, recipe_args(tiny_encoder_dir, out, *resume))],
                                       stdout=log, stderr=subprocess.STDOUT, env=env)
            seen = set(out.glob("checkpoint-*"))
            mid_write = round_ % 2 == 0  # alternate: as a checkpoint folder appears, or at a random moment
            started, deadline = time.monotonic(), time.monotonic() + 300
            random_moment = rng.uniform(0.5, 6.0)
            while process.poll() is None and time.monotonic() < deadline:
                # A new folder is killed at once (a listing, not the slower completeness check): mid-write.
                if mid_write and set(out.glob("checkpoint-*")) - seen:
                    time.sleep(rng.uniform(0, 0.005))
                    break
                if not mid_write and time.monotonic() - started > random_moment:
                    break
                time.sleep(0.001)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        skipped += "which is incomplete" in log_path.read_text()
    final = subprocess.run([*command, *map(str, recipe_args(tiny_encoder_dir, out, "--resume_from_checkpoint",
                                                            "last"))], env=env, capture_output=True, text=True,
                           timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    skipped += "which is incomplete" in final.stderr
    assert kills >= 3 and skipped >= 1, (kills, skipped)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == json.loads((reference / "trainer_state.json").read_text())["global_step"]
    ours, theirs = weights(out), weights(reference)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
