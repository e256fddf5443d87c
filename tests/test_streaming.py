"""recipes/pretrain.py --streaming: corpora larger than memory read as a datasets IterableDataset.

The quick tests run the recipe in this process on a tiny corpus and watch the batches it trains on (a wrapper
around `MaskedPositionsTrainer.compute_loss` records the unmasked ids of every training batch). The slow ones run it
in real processes: the peak resident memory on a generated 300 MB corpus (read with `os.wait4`, which reports the
finished child's own peak RSS), and two processes under `accelerate launch` (as tests/test_distributed.py launches
them) recording which texts each one trained on.
"""

import json
import math
import os
import random
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import torch
from transformers import BertForMaskedLM

from conftest import PYTHON, ROOT, run_recipe_in_process, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.pretraining.training import MaskedPositionsTrainer

RECIPE = ROOT / "recipes" / "pretrain.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
WORDS = ("the a of in to and on at for with from by was is said visited met told new city bank group company "
         "president minister team john mary anna peter paris london berlin").split()

# Runs the recipe unchanged; every training batch's texts (labels put back at the masked positions) are appended to
# BATCH_LOG_DIR/rank{RANK}.jsonl.
RECORDING_RUNNER = textwrap.dedent("""
    import json, os, runpy, sys
    import torch
    from hf_bert_tasks.pretraining.training import MaskedPositionsTrainer

    compute_loss = MaskedPositionsTrainer.compute_loss

    def recording_compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            ids = torch.where(inputs["labels"] != -100, inputs["labels"], inputs["input_ids"])
            rows = [row[mask.bool()].tolist() for row, mask in zip(ids, inputs["attention_mask"])]
            texts = [self.processing_class.decode(row, skip_special_tokens=True) for row in rows]
            path = os.path.join(os.environ["BATCH_LOG_DIR"], f"rank{os.environ.get('RANK', '0')}.jsonl")
            with open(path, "a") as log:
                log.write(json.dumps(texts) + "\\n")
        return compute_loss(self, model, inputs, *args, **kwargs)

    MaskedPositionsTrainer.compute_loss = recording_compute_loss
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory) -> Path:
    """A tiny random BertForMaskedLM and its tokenizer."""
    path = tmp_path_factory.mktemp("tiny-mlm")
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config()).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def recipe_args(model_dir, output_dir, train_files, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_files", *map(str, train_files),
            "--output_dir", str(output_dir), "--do_train", "--streaming", "--report_to", "none", "--use_cpu",
            "--seed", "1", "--save_strategy", "no", "--disable_tqdm", "true", *map(str, extra)]


def run_in_process(args, monkeypatch, cache):
    """The pretraining recipe's main() in this process (it reads sys.argv; no import cost)."""
    run_recipe_in_process(RECIPE, args, monkeypatch, cache)


def record_batches(monkeypatch) -> list[tuple[list[list[int]], list[list[int]]]]:
    """Patch the trainer to record (original ids, fed ids) of every training batch; returns the list it fills."""
    batches = []
    compute_loss = MaskedPositionsTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        if model.training:
            original = torch.where(inputs["labels"] != -100, inputs["labels"], inputs["input_ids"])
            keep = inputs["attention_mask"].bool()
            batches.append(([row[m].tolist() for row, m in zip(original, keep)],
                            [row[m].tolist() for row, m in zip(inputs["input_ids"], keep)]))
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(MaskedPositionsTrainer, "compute_loss", recording)
    return batches


def test_streaming_needs_max_steps(mlm_dir, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("john visited paris\n", encoding="utf-8")
    with pytest.raises(ValueError, match="--streaming needs --max_steps: a streamed corpus has no length"):
        run_in_process(recipe_args(mlm_dir, tmp_path / "out", [corpus]), monkeypatch, tmp_path / "cache")
    with pytest.raises(ValueError, match="--preprocessing_num_workers does not apply to --streaming"):
        run_in_process(recipe_args(mlm_dir, tmp_path / "out", [corpus], "--max_steps", 1,
                                   "--preprocessing_num_workers", 2), monkeypatch, tmp_path / "cache")


def test_streaming_trains_in_corpus_order_and_masks_afresh_each_pass(mlm_dir, tmp_path, monkeypatch):
    tokenizer = tiny_tokenizer()
    lines = ["john visited paris on monday", "mary met anna in london", "", "peter said the bank was new",
             "the team from berlin visited tokyo", "the president met the minister"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batches = record_batches(monkeypatch)
    out = tmp_path / "out"
    # No shuffling: batches follow the file; 5 non-empty texts in batches of 2, 6 steps = 12 chunks, 2.4 passes.
    run_in_process(recipe_args(mlm_dir, out, [corpus], "--max_steps", 6, "--per_device_train_batch_size", 2,
                               "--shuffle_buffer_size", 0, "--validation_file", corpus, "--do_eval",
                               "--logging_steps", 1), monkeypatch, tmp_path / "cache")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["eval_loss"]) and results["perplexity"] == pytest.approx(
        math.exp(results["eval_loss"]))
    assert (out / "model.safetensors").is_file()

    texts = [tokenizer.decode(ids, skip_special_tokens=True) for original, _ in batches for ids in original]
    non_empty = [line for line in lines if line]
    assert len(batches) == 6
    assert texts[:5] == non_empty and texts[5:10] == non_empty  # each pass reads the corpus once, in order
    # Masks are drawn per batch, not stored with the data: the same text is masked differently on another pass.
    fed = [ids for _, batch in batches for ids in batch]
    assert any(fed[i] != fed[i + 5] for i in range(5))
    for original, batch in batches:
        for ids, masked in zip(original, batch):
            assert masked != ids  # at least one word masked or replaced in every chunk
    assert not list((tmp_path / "cache").rglob("*.arrow"))  # streaming converts nothing to Arrow on disk


def write_corpus(path: Path, size: int, seed: int, prefix: str = "") -> int:
    """A text file of about `size` bytes: lines of 8-30 random words from the tiny vocabulary, each line numbered
    (`prefix` and a serial number), so every line is a distinct text. Returns the size written."""
    rng = random.Random(seed)
    block = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(2000)]
    written, serial = 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            lines = []
            for line in block:
                lines.append(f"{prefix}{serial} {line}\n")
                serial += 1
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk)
    return written


def peak_rss_of_run(args, env) -> tuple[int, float]:
    """Run the recipe in a subprocess; its own peak resident set size in bytes (os.wait4 reports the finished
    child's rusage, not every child's maximum as RUSAGE_CHILDREN would) and the wall time."""
    began = time.monotonic()
    process = subprocess.Popen([PYTHON, str(RECIPE), *map(str, args)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    output = process.stdout.read()  # until the child closes it (exits)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]
    return usage.ru_maxrss * 1024, time.monotonic() - began  # ru_maxrss is in KiB on Linux


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus_or_the_steps(mlm_dir, tmp_path):
    # datasets' text reader takes 10 MiB blocks: the smaller corpus holds three, so both runs hold the same pieces.
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small_size = write_corpus(small, 30_000_000, seed=0)
    large_size = write_corpus(large, 300_000_000, seed=0)
    env = {**ENV, "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    flags = ["--per_device_train_batch_size", 16, "--max_seq_length", 64, "--logging_steps", 50]
    baseline, _ = peak_rss_of_run(recipe_args(mlm_dir, tmp_path / "a", [small], "--max_steps", 40, *flags), env)
    same_steps, _ = peak_rss_of_run(recipe_args(mlm_dir, tmp_path / "b", [large], "--max_steps", 40, *flags), env)
    more_steps, seconds = peak_rss_of_run(
        recipe_args(mlm_dir, tmp_path / "c", [large], "--max_steps", 400, *flags), env)
    mib = 1 << 20
    report = (f"peak RSS: {baseline / mib:.0f} MiB on {small_size / mib:.0f} MiB of text (40 steps); on "
              f"{large_size / mib:.0f} MiB {same_steps / mib:.0f} MiB (40 steps) and {more_steps / mib:.0f} MiB "
              f"(400 steps, {seconds:.0f} s)")
    print(report)
    # 270 MiB more text, and ten times the steps on it: the peak moves by less than 5% of the corpus (14 MiB; runs
    # differ by about 10 MiB). What is held depends on neither: one block of the file, the shuffle buffer of 10,000
    # texts, one map batch of 1,000 texts, one training batch. Loading the corpus would add hundreds of MiB.
    assert abs(same_steps - baseline) < 0.05 * large_size, report
    assert abs(more_steps - baseline) < 0.05 * large_size, report
    assert not list((tmp_path / "cache").rglob("*.arrow")), "the corpus was converted to Arrow files"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("files", [2, 1], ids=["one-file-per-process", "one-file"])
def test_two_processes_train_on_different_text(mlm_dir, tmp_path, files):
    corpora = [tmp_path / f"part{i}.txt" for i in range(files)]
    for i, corpus in enumerate(corpora):
        write_corpus(corpus, 200_000, seed=i, prefix=f"{'ab'[i]} ")  # part0 lines start "a N", part1 "b N"
    runner = tmp_path / "record_batches.py"
    runner.write_text(RECORDING_RUNNER)
    steps, batch = 5, 4
    result = subprocess.run(
        [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         str(runner), str(RECIPE),
         *recipe_args(mlm_dir, tmp_path / "out", corpora, "--max_steps", steps, "--per_device_train_batch_size",
                      batch, "--max_seq_length", 64, "--shuffle_buffer_size", 100)],
        capture_output=True, text=True, timeout=600,
        env={**ENV, "BATCH_LOG_DIR": str(tmp_path), "HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == steps

    texts = {}
    for rank in (0, 1):
        lines = (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()
        assert len(lines) == steps, f"rank {rank} trained {len(lines)} batches"
        texts[rank] = [text for line in lines for text in json.loads(line)]
        assert len(texts[rank]) == steps * batch
        assert len(set(texts[rank])) == len(texts[rank])  # lines are distinct: no text twice on one rank
    assert not set(texts[0]) & set(texts[1]), "both processes trained on the same text"
    if files == 2:  # as many files as processes: each process reads only its own file
        assert {text.split()[0] for text in texts[0]} != {text.split()[0] for text in texts[1]}
        assert all(len({text.split()[0] for text in texts[rank]}) == 1 for rank in (0, 1)), texts
