"""`python -m hf_bert_tasks.predictor MODEL TEXT ...`: one command for every task, printing what each task's own
predictor returns (the task read from config.json)."""

import json
import os
import subprocess

import torch
from transformers import BertModel

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from tiny_models import save_classifier, save_qa_model

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
TEXTS = ["the team won the cup final", "john visited paris on monday . the bank said"]


def same_json(records):
    """What the command prints for these records (JSON keeps floats exactly)."""
    return json.loads(json.dumps(records, ensure_ascii=False))


def predict(*args, check=True, stdin=None):
    result = subprocess.run([PYTHON, "-m", "hf_bert_tasks.predictor", *map(str, args)], capture_output=True,
                            text=True, env=ENV, cwd=ROOT, timeout=300, input=stdin)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads(line) for line in result.stdout.splitlines()]
    return result


def test_ner_model(tmp_path):
    from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
    from hf_bert_tasks.ner.predictor import NerPredictor

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(0)
    BertCrfForTokenClassification(config).save_pretrained(tmp_path / "ner")
    tiny_tokenizer().save_pretrained(tmp_path / "ner")
    printed = predict(tmp_path / "ner", *TEXTS)
    expected = NerPredictor.from_pretrained(str(tmp_path / "ner"))(TEXTS)
    assert [line["text"] for line in printed] == TEXTS
    assert [line["entities"] for line in printed] == same_json(expected)
    assert any(expected), "the untrained model tags nothing: the comparison would be empty"


def test_dtype_loads_the_weights_in_bfloat16(tmp_path):
    """`--dtype bfloat16` gives what the predictor loaded with `dtype="bfloat16"` gives, for plain texts and for a
    corpus (--output); an unknown type is refused by argparse."""
    from hf_bert_tasks.classification.predictor import TextClassifier

    folder = save_classifier(tmp_path / "classifier")
    expected = TextClassifier.from_pretrained(str(folder), dtype="bfloat16")(TEXTS)
    assert expected != TextClassifier.from_pretrained(str(folder))(TEXTS)  # bf16 probabilities differ a little
    printed = predict(folder, *TEXTS, "--dtype", "bfloat16")
    assert [{key: line[key] for key in expected[0]} for line in printed] == same_json(expected)
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    predict(folder, "--input", tmp_path / "texts.txt", "--output", tmp_path / "out.jsonl", "--dtype", "bfloat16")
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["probabilities"] for line in written] == [line["probabilities"] for line in same_json(expected)]
    refused = predict(folder, *TEXTS, "--dtype", "int4", check=False)
    assert refused.returncode == 2 and "invalid choice: 'int4'" in refused.stderr


def test_threads_set_torchs_threads_of_the_process(tmp_path):
    folder = save_classifier(tmp_path / "classifier")
    probe = ("import atexit, runpy, sys, torch; "
             "atexit.register(lambda: print('THREADS', torch.get_num_threads(), file=sys.stderr)); "
             "sys.argv = sys.argv[1:]; runpy.run_module('hf_bert_tasks.predictor', run_name='__main__')")
    for given, expected in ((["--threads", "2"], 2), ([], 1)):  # ENV sets OMP_NUM_THREADS=1
        result = subprocess.run([PYTHON, "-c", probe, "hf_bert_tasks.predictor", str(folder), TEXTS[0], *given],
                                capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"THREADS {expected}" in result.stderr and json.loads(result.stdout)["label"]
    for bad in ("0", "-1", "two", "\u00b2"):  # refused by the parser, for texts and for corpora alike
        for corpus in ([], ["--input", str(folder / "config.json"), "--output", str(tmp_path / "out.jsonl")]):
            refused = predict(folder, *([] if corpus else [TEXTS[0]]), *corpus, "--threads", bad, check=False)
            assert refused.returncode == 2 and "--threads: expected a whole number of at least 1" in refused.stderr
            assert "Traceback" not in refused.stderr


def test_classifier(tmp_path):
    from hf_bert_tasks.classification.predictor import TextClassifier

    folder = save_classifier(tmp_path / "classifier")
    printed = predict(folder, *TEXTS)
    expected = TextClassifier.from_pretrained(str(folder))(TEXTS)
    assert [{key: line[key] for key in expected[0]} for line in printed] == same_json(expected)
    assert printed[0]["label"] == "sports"


def test_question_answering_model_needs_a_question(tmp_path):
    from hf_bert_tasks.qa.predictor import answer_questions

    folder = save_qa_model(tmp_path / "qa")
    contexts = ["john visited paris on monday .", "mary met anna in london ."]
    printed = predict(folder, *contexts, "--question", "who visited paris ?")
    expected = answer_questions(str(folder), ["who visited paris ?"] * 2, contexts)
    assert [{key: line[key] for key in expected[0]} for line in printed] == same_json(expected)
    assert printed[0]["answer"] == "john"
    missing = predict(folder, *contexts, check=False)
    assert missing.returncode == 2 and "pass --question" in missing.stderr


def test_a_model_of_no_known_task_is_refused_by_name(tmp_path):
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "encoder")
    tiny_tokenizer().save_pretrained(tmp_path / "encoder")
    result = predict(tmp_path / "encoder", "text", check=False)
    assert result.returncode != 0 and "cannot tell the task" in result.stderr and "BertModel" in result.stderr


def test_texts_from_standard_input_and_a_file_and_a_path_given_as_text(tmp_path):
    """`-` reads standard input and `--input` a file, one text a line (blank lines kept: a text without tokens gets no
    prediction, printed as null); an argument naming a file is tagged as text, with a warning."""
    from hf_bert_tasks.classification.predictor import TextClassifier

    folder = save_classifier(tmp_path / "classifier")
    lines = tmp_path / "texts.txt"
    lines.write_text("the bank said\r\n\nthe minister told the president\n", encoding="utf-8")
    printed = predict(folder, TEXTS[0], "-", str(lines), "--input", lines, stdin="the team won\n\ufffd\n")
    texts = [TEXTS[0], "the team won", "\ufffd", str(lines), "the bank said", "", "the minister told the president"]
    assert [line["text"] for line in printed] == texts
    expected = TextClassifier.from_pretrained(str(folder))(texts)
    assert expected[2] is None and expected[5] is None
    assert [line["label"] for line in printed] == [None if e is None else e["label"] for e in expected]
    assert printed[2] == {"text": "\ufffd", "label": None, "score": None, "probabilities": None}
    result = predict(folder, lines, check=False)
    assert result.returncode == 0 and f"the text '{lines}' names a file" in result.stderr
    assert "--input" in result.stderr
    nothing = predict(folder, check=False)
    assert nothing.returncode == 2 and "no text to predict" in nothing.stderr


def test_question_answering_refuses_an_empty_question_by_name(tmp_path):
    folder = save_qa_model(tmp_path / "qa")
    result = predict(folder, "john visited paris .", "--question", " ", check=False)
    assert result.returncode == 2 and "question 0 is empty" in result.stderr
