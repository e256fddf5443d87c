"""`--report_to tensorboard` (the `tensorboard` extra, installed by the dev setup): the NER recipe writes TensorBoard
event files that hold the evaluation F1 it reports in all_results.json."""

import json
import os
import subprocess

import pytest

from conftest import PYTHON, ROOT

pytest.importorskip("tensorboard")


def test_ner_recipe_writes_the_eval_f1_to_tensorboard(tiny_encoder_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sample = ROOT / "hf_bert_tasks" / "sample_data"
    out = tmp_path / "out"
    result = subprocess.run(
        [PYTHON, str(ROOT / "recipes" / "ner.py"), "--model_name_or_path", str(tiny_encoder_dir),
         "--train_file", str(sample / "en_train.conll"), "--validation_file", str(sample / "en_dev.conll"),
         "--max_train_samples", "32", "--max_eval_samples", "20", "--num_train_epochs", "2", "--do_train",
         "--do_eval", "--eval_strategy", "epoch", "--output_dir", str(out), "--save_strategy", "no",
         "--report_to", "tensorboard", "--use_cpu", "--learning_rate", "5e-3"],
        capture_output=True, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    event_files = sorted(out.rglob("events.out.tfevents.*"))
    assert event_files, f"no event files under {out}"
    f1 = {}  # step -> eval F1, over every event file of the run
    for path in event_files:
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tag in ("eval/f1", "eval_f1"):
                f1.update({event.step: event.value for event in events.Scalars(tag)})
    # one value per epoch; the last is the F1 of the final evaluation, as all_results.json reports it
    assert len(f1) >= 2, f1
    results = json.loads((out / "all_results.json").read_text())
    assert f1[max(f1)] == pytest.approx(results["eval_f1"], abs=1e-6)
