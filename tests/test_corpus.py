"""Corpus prediction (hf_bert_tasks/predictor/corpus.py, `python -m hf_bert_tasks.predictor MODEL --input ... --output
...`): every input and output format, input order kept, `--resume` after `kill -9` at random points byte-identical to
an uninterrupted run, and two processes under `accelerate launch` byte-identical to one."""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, ROOT, WORDS
from hf_bert_tasks.ner.data import load_ner_dataset
from hf_bert_tasks.predictor.__main__ import main
from test_hub import save_recipe_output
from tiny_models import QUESTIONS, save_classifier, save_qa_model

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny CRF model and 300 texts of 0 to 30 words (blank lines too), one a line."""
    tmp = tmp_path_factory.mktemp("corpus")
    save_recipe_output(tmp / "ner", seed=0, results={})
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) for _ in range(300)]
    (tmp / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    return tmp, texts


def predict(*args):
    main([str(arg) for arg in args])


def test_text_in_every_output_format_in_input_order(corpus, tmp_path):
    from hf_bert_tasks.ner.predictor import NerPredictor

    folder, texts = corpus
    predict(folder / "ner", "--input", folder / "texts.txt", "--output", tmp_path / "out.jsonl", "--chunk_size", 7)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == texts
    expected = NerPredictor.from_pretrained(str(folder / "ner"))(texts)  # all at once, in other batches
    assert any(expected)
    assert [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records] == \
        [[(e["type"], e["start"], e["end"]) for e in row] for row in expected]
    assert [e["score"] for r in records for e in r["entities"]] == \
        pytest.approx([e["score"] for row in expected for e in row], abs=1e-5)

    spans = [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records]
    for name, fmt in (("out.json", "labelstudio"), ("out.doccano.jsonl", "doccano")):
        predict(folder / "ner", "--input", folder / "texts.txt", "--output", tmp_path / name, "--chunk_size", 7,
                *(["--output_format", "doccano"] if fmt == "doccano" else []))
        if fmt == "labelstudio":
            tasks = json.loads((tmp_path / name).read_text(encoding="utf-8"))
            got = [[(r["value"]["labels"][0], r["value"]["start"], r["value"]["end"])
                    for r in task["predictions"][0]["result"]] for task in tasks]
            assert [t["data"]["text"] for t in tasks] == texts
        else:
            lines = [json.loads(line) for line in (tmp_path / name).read_text(encoding="utf-8").splitlines()]
            got = [[(t, s, e) for s, e, t in line["label"]] for line in lines]
        assert got == spans, fmt
    import pyarrow.parquet as pq

    predict(folder / "ner", "--input", folder / "texts.txt", "--output", tmp_path / "out.parquet", "--chunk_size", 7)
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["text"] for row in table] == texts
    assert [json.loads(row["entities"]) for row in table] == [r["entities"] for r in records]


def test_conll_retagging_and_json_lines_fields(corpus, tmp_path):
    folder, _ = corpus
    source = ROOT / "hf_bert_tasks" / "sample_data" / "en_dev.conll"
    predict(folder / "ner", "--input", source, "--output", tmp_path / "retagged.conll", "--chunk_size", 16)
    original = load_ner_dataset(test_file=source)["test"]
    retagged = load_ner_dataset(test_file=tmp_path / "retagged.conll")["test"]
    assert retagged["tokens"] == original["tokens"]  # the same layout, predicted tags

    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "body": t}) + "\n"
                                               for i, t in enumerate(["john met mary", "", "the bank in paris"])))
    predict(folder / "ner", "--input", tmp_path / "in.jsonl", "--text_field", "body", "--output", tmp_path / "o.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(r["id"], r["body"]) for r in rows] == [(0, "john met mary"), (1, ""), (2, "the bank in paris")]
    assert rows[1]["entities"] == []


def test_classification_and_qa_corpora(tmp_path):
    from hf_bert_tasks.classification.predictor import TextClassifier
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    save_classifier(tmp_path / "classifier")
    texts = ["the team won the cup final", "", "reuters said the bank group"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    predict(tmp_path / "classifier", "--input", tmp_path / "texts.txt", "--output", tmp_path / "labels.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    expected = TextClassifier.from_pretrained(str(tmp_path / "classifier"))(texts)
    assert [r["label"] for r in rows] == [e and e["label"] for e in expected] == ["sports", None, "business"]

    save_qa_model(tmp_path / "qa")
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps({"q": q, "context": c}) + "\n" for q, c, _ in QUESTIONS))
    predict(tmp_path / "qa", "--input", tmp_path / "qa.jsonl", "--question_field", "q", "--output",
            tmp_path / "answers.jsonl", "--chunk_size", 3)
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    answers = QuestionAnswerer.from_pretrained(str(tmp_path / "qa"))([q for q, _, _ in QUESTIONS],
                                                                     [c for _, c, _ in QUESTIONS])
    assert [r["answer"] for r in rows] == [a["answer"] for a in answers] == [a for _, _, a in QUESTIONS]


def run_cli(*args, launcher=()):
    return subprocess.Popen([*launcher, *map(str, args)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_resume_after_kill_9_at_random_points_is_byte_identical(corpus, tmp_path):
    folder, texts = corpus
    command = [PYTHON, "-m", "hf_bert_tasks.predictor", folder / "ner", "--input", folder / "texts.txt",
               "--chunk_size", 4, "--batch_size", 4]
    assert run_cli(*command, "--output", tmp_path / "whole.jsonl").wait(600) == 0
    whole = (tmp_path / "whole.jsonl").read_bytes()
    rng, out, kills = random.Random(1), tmp_path / "resumed.jsonl", 0
    for _ in range(3):
        process = run_cli(*command, "--output", out, "--resume")
        target = rng.randint(1, len(whole) - 1)
        while process.poll() is None and (not out.exists() or out.stat().st_size < target):
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(600)
    assert kills >= 2, "the runs ended before they could be killed"
    assert out.read_bytes() != whole  # cut off (or left mid-record): the comparison below means something
    process = run_cli(*command, "--output", out, "--resume")
    assert process.wait(600) == 0, process.stderr.read()[-2000:]
    assert out.read_bytes() == whole


def test_two_accelerate_processes_write_what_one_does(corpus, tmp_path):
    folder, _ = corpus
    args = [folder / "ner", "--input", folder / "texts.txt", "--chunk_size", 8]
    assert run_cli(PYTHON, "-m", "hf_bert_tasks.predictor", *args, "--output", tmp_path / "one.jsonl").wait(600) == 0
    launcher = [PYTHON, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "hf_bert_tasks.predictor"]
    process = run_cli(*args, "--output", tmp_path / "two.jsonl", launcher=launcher)
    assert process.wait(600) == 0, process.stderr.read()[-3000:]
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert not list(tmp_path.glob("two.jsonl.part-*"))
