"""ONNX export (hf_bert_tasks/export.py): the exported graph against PyTorch on other shapes, the ONNX model's CRF
decoding (the package's LinearChainCRF) against the model's, OnnxNerPredictor against NerPredictor (tiny models and
the real CoNLL-2003 dev set), and the command line."""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CHARACTERS, PYTHON, ROOT, WORDS, minilm_path, shared_data_path, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks import BertCrfForTokenClassification
from hf_bert_tasks.export import METADATA_CRF, OnnxNerPredictor, export_onnx, load_onnx_model
from hf_bert_tasks.ner.predictor import NerPredictor

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


# -- export ---------------------------------------------------------------------------------------------------------


def save_tiny_crf_model(encoder_dir, path):
    """A tiny BERT+CRF with emissions and transitions large enough that random texts get varied entities."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = BertCrfForTokenClassification.from_encoder(str(encoder_dir), LABELS, max_seq_length=24, stride=6)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        model.crf.transitions.normal_(0.0, 1.0)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(path)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tiny_encoder_dir, tmp_path_factory):
    """(model folder, ONNX file, the PyTorch model) for the tiny CRF model, exported once."""
    folder = tmp_path_factory.mktemp("tiny-crf")
    model = save_tiny_crf_model(tiny_encoder_dir, folder)
    onnx_path = export_onnx(folder, folder / "onnx" / "model.onnx")
    return folder, onnx_path, model


def random_texts(seed, count):
    rng = random.Random(seed)
    vocabulary = WORDS + [w.capitalize() for w in WORDS] + [",", ".", "(", ")", "1996", "3-2"]
    texts = []
    for i in range(count):
        if i % 5 == 4:  # Chinese characters: one word each
            texts.append("".join(rng.choice(CHARACTERS) for _ in range(rng.randint(1, 60))))
        else:  # up to ~4 windows of the tiny model's 24 tokens
            texts.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 70))))
    return texts + [""]


def test_exported_graph_has_dynamic_batch_and_length_and_matches_pytorch(exported):
    folder, onnx_path, model = exported
    assert [p.name for p in onnx_path.parent.iterdir()] == ["model.onnx"]  # one self-contained file
    proto = onnx.load(str(onnx_path))
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert sorted(inputs) == ["attention_mask", "input_ids", "token_type_ids"]
    assert all(dims == ["batch", "length"] for dims in inputs.values()), inputs  # symbolic, not fixed sizes
    (output,) = proto.graph.output
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["batch", "length", len(LABELS)]
    metadata = {p.key: p.value for p in proto.metadata_props}
    crf_scores = json.loads(metadata[METADATA_CRF])
    np.testing.assert_array_equal(np.array(crf_scores["transitions"], dtype=np.float32),
                                  model.crf.effective_scores()[1].detach().numpy())

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for batch, length in [(1, 3), (6, 17), (2, 301)]:
        input_ids = torch.randint(5, 60, (batch, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, length // 2 + 1:] = 0
        token_type_ids = torch.zeros_like(input_ids)
        with torch.no_grad():
            expected = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        (got,) = session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                                    "token_type_ids": token_type_ids.numpy()})
        assert got.shape == (batch, length, len(LABELS))
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


def test_onnx_decoding_is_the_models_own_crf(exported):
    folder, onnx_path, model = exported
    classifier = load_onnx_model(onnx_path, model.config)
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 13, len(LABELS), generator=generator) * 3
    tag_mask = torch.rand(5, 13, generator=generator) > 0.4  # scattered positions, like first word pieces
    tag_mask[3] = False  # a row without labelled positions
    expected_tags = model.decode(logits, tag_mask)
    tags = classifier.decode(logits, tag_mask)
    assert torch.equal(tags, expected_tags)
    assert (tags[~tag_mask] == -100).all() and (tags[tag_mask] >= 0).all()
    # The same LinearChainCRF code on the same effective scores: the same marginals, to float32 rounding.
    expected = model.tag_probabilities(logits, tag_mask, tags.clamp(min=0))
    torch.testing.assert_close(classifier.tag_probabilities(logits, tag_mask, tags.clamp(min=0)), expected,
                               atol=1e-6, rtol=0)
    assert type(classifier.crf).__name__ == "LinearChainCRF"


def entity_keys(entities):
    return [(e["type"], e["start"], e["end"], e["text"]) for e in entities]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_onnx_predictor_finds_the_entities_of_the_pytorch_predictor(exported, batch_size):
    folder, onnx_path, model = exported
    reference = NerPredictor.from_pretrained(str(folder), batch_size=batch_size)
    predictor = OnnxNerPredictor(onnx_path, folder, batch_size=batch_size, threads=1)
    texts = random_texts(seed=batch_size, count=25)
    expected, got = reference(texts), predictor(texts)
    assert sum(len(e) for e in expected) > 20  # not a vacuous comparison
    assert {e["type"] for entities in expected for e in entities} == {"LOC", "PER"}
    for text, want, have in zip(texts, expected, got):
        assert entity_keys(have) == entity_keys(want), text
        np.testing.assert_allclose([e["score"] for e in have], [e["score"] for e in want], atol=1e-4)
    sentences = [text.split() for text in texts[:6]]
    assert predictor.predict_words(sentences)[0] == reference.predict_words(sentences)[0]


def test_softmax_model_exports_and_predicts_like_pytorch(tiny_encoder_dir, tmp_path):
    from transformers import AutoTokenizer, BertForTokenClassification

    torch.manual_seed(0)
    model = BertForTokenClassification(tiny_bert_config(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                                        label2id={label: i for i, label in enumerate(LABELS)}))
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(tmp_path)
    onnx_path = export_onnx(tmp_path, tmp_path / "model.onnx")
    assert not hasattr(OnnxNerPredictor(onnx_path, tmp_path).model, "decode")  # argmax, as for the torch model
    texts = random_texts(seed=7, count=10)
    expected = NerPredictor.from_pretrained(str(tmp_path))(texts)
    got = OnnxNerPredictor(onnx_path, tmp_path, threads=1)(texts)
    assert sum(len(e) for e in expected) > 5
    assert [entity_keys(e) for e in got] == [entity_keys(e) for e in expected]


# -- sequence classification and QA: the same export, each task's own predictor ------------------------------------


def save_tiny_head(head, path, **config):
    """A tiny BERT with a transformers head whose predictions vary between texts: larger weights than the init's
    (attention that depends on the text) and, for a classifier, logits centred on the mean of other random texts."""
    torch.manual_seed(0)
    model = head(tiny_bert_config(**config)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embeddings" not in name:
                parameter.normal_(0.0, 0.3)
        if hasattr(model, "classifier"):
            encoded = tiny_tokenizer()(random_texts(seed=1, count=40)[:-1], padding=True, truncation=True,
                                       max_length=24, return_tensors="pt")
            model.classifier.bias.sub_(model(**encoded).logits.mean(0))
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_classifier_exports_and_classifies_like_pytorch_in_windows_and_int8(tmp_path, capsys):
    from transformers import BertForSequenceClassification

    from hf_bert_tasks.classification.predictor import TextClassifier
    from hf_bert_tasks.export import OnnxTextClassifier, main, quantize_int8

    labels = ["sports", "finance", "games"]
    folder = save_tiny_head(BertForSequenceClassification, tmp_path / "model",
                            id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
                            long_text="windows", max_seq_length=24, stride=6)  # long texts: pooled windows
    out = tmp_path / "onnx"
    assert main([str(folder), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity: ONNX Runtime and PyTorch find the same 4 labels in 4 sample texts" in printed
    assert f"OnnxTextClassifier({str(out / 'model.onnx')!r}, {str(out)!r})(text)" in printed
    texts = random_texts(seed=5, count=30)
    expected = TextClassifier.from_pretrained(str(folder))(texts)
    got = OnnxTextClassifier(out / "model.onnx", out, threads=1)(texts)
    assert expected[-1] is None and got[-1] is None  # the empty text
    assert len({record["label"] for record in expected[:-1]}) == 3  # not a vacuous comparison
    assert [r["label"] for r in got[:-1]] == [r["label"] for r in expected[:-1]]
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in got[:-1]],
                               [list(r["probabilities"].values()) for r in expected[:-1]], atol=1e-5)
    # int8: integer products, the labels of most texts kept (a random tiny model has close calls)
    int8_path = quantize_int8(out / "model.onnx", tmp_path / "model.int8.onnx")
    int8 = OnnxTextClassifier(int8_path, out)(texts)
    assert sum(a["label"] == b["label"] for a, b in zip(int8[:-1], expected[:-1])) >= 0.8 * (len(texts) - 1)
    # ... but the first layer's products and the down-projections (FLOAT_PRODUCTS) keep their float32 weights: these
    # weights, named as PyTorch names them, and no other (the pooler and the classifier act on one vector per text:
    # Gemm nodes, which QUANTIZED_OPS leaves float)
    model = BertForSequenceClassification.from_pretrained(folder)
    first = [f"bert.encoder.layer.0.{name}.weight" for name in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense")]
    down = [f"bert.encoder.layer.{i}.output.dense.weight" for i in range(model.config.num_hidden_layers)]
    expected_float = [model.state_dict()[name].T.numpy() for name in [*first, *down]]
    graph = onnx.load(str(int8_path))
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in graph.graph.initializer}
    kept = [weights[node.input[1]] for node in graph.graph.node
            if node.op_type == "MatMul" and node.input[1] in weights]
    assert len(kept) == len(expected_float)
    assert all(any(np.array_equal(k, e) for k in kept) for e in expected_float)
    assert any(node.op_type == "MatMulInteger" for node in graph.graph.node)  # the pooler and later layers' others


def test_qa_model_exports_and_answers_like_pytorch(tmp_path, capsys):
    from transformers import BertForQuestionAnswering, BertForSequenceClassification

    from hf_bert_tasks.export import QA_QUESTIONS, OnnxQuestionAnswerer, main
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    folder = save_tiny_head(BertForQuestionAnswering, tmp_path / "model", max_seq_length=40,
                            doc_stride=12, max_question_length=16)  # as recipes/qa.py saves them: contexts in windows
    out = tmp_path / "onnx"
    assert main([str(folder), str(out), "--text", " ".join(WORDS * 4), "--text", "john visited paris"]) == 0
    printed = capsys.readouterr().out
    assert f"parity: ONNX Runtime and PyTorch find the same {2 * len(QA_QUESTIONS)} answers in " \
           f"{2 * len(QA_QUESTIONS)} sample questions" in printed
    assert "OnnxQuestionAnswerer(" in printed and "(question, context)" in printed
    contexts = [text for text in random_texts(seed=9, count=12) if text]
    questions = [" ".join(context.split()[:3]) + " ?" for context in contexts[::-1]]
    expected = QuestionAnswerer.from_pretrained(str(folder))(questions, contexts)
    got = OnnxQuestionAnswerer(out / "model.onnx", out, threads=1)(questions, contexts)
    assert len({(a["start"], a["end"]) for a in expected}) > 5
    assert [(a["answer"], a["start"], a["end"]) for a in got] == [(a["answer"], a["start"], a["end"]) for a in expected]
    np.testing.assert_allclose([a["score"] for a in got], [a["score"] for a in expected], atol=1e-4)
    # a file and a folder of different tasks do not belong together, even with the same two labels
    classifier = save_tiny_head(BertForSequenceClassification, tmp_path / "classifier")
    with pytest.raises(ValueError, match="exported from a qa model .* do not belong together"):
        OnnxQuestionAnswerer(out / "model.onnx", classifier)


def test_loading_rejects_a_file_that_does_not_belong_to_the_folder(exported, tmp_path):
    folder, onnx_path, model = exported
    other = tmp_path / "other"  # the same model with other label names
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("onnx"))
    config = json.loads((other / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-ORG", "2": "I-ORG", "3": "B-PER", "4": "I-PER"}
    config["label2id"] = {label: int(i) for i, label in config["id2label"].items()}
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not belong together"):
        OnnxNerPredictor(onnx_path, other)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxNerPredictor(tmp_path / "missing.onnx", folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(tmp_path / "no-model", tmp_path / "x.onnx")


def test_export_refuses_a_bilstm_model_with_a_clear_error(tiny_encoder_dir, tmp_path):
    model = BertCrfForTokenClassification.from_encoder(str(tiny_encoder_dir), LABELS, use_bilstm=True,
                                                       lstm_hidden_size=16)
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="BiLSTM"):
        export_onnx(tmp_path, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.slow
def test_minilm_crf_model_exports_and_predicts_like_pytorch(tmp_path):
    encoder = minilm_path()
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = BertCrfForTokenClassification.from_encoder(str(encoder), LABELS)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.5)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(tmp_path)
    onnx_path = export_onnx(tmp_path, tmp_path / "model.onnx")
    texts = ["John Smith visited the Bank of Paris on Monday with Mary.",
             " ".join(["The European group met in Berlin and Tokyo, said Reuters."] * 40)]  # several windows
    expected = NerPredictor(model, AutoTokenizer.from_pretrained(tmp_path))(texts)
    got = OnnxNerPredictor(onnx_path, tmp_path)(texts)
    assert sum(len(e) for e in expected) > 0
    assert [entity_keys(e) for e in got] == [entity_keys(e) for e in expected]


def test_command_line_writes_checks_and_says_where(exported, tmp_path):
    from transformers import AutoTokenizer

    folder, _, model = exported
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    help_text = subprocess.run([PYTHON, "-m", "hf_bert_tasks.export", "--help"], capture_output=True, text=True,
                               env=env)
    assert help_text.returncode == 0 and "MODEL_DIR" in help_text.stdout.upper() and "--opset" in help_text.stdout
    out = tmp_path / "onnx-out"
    result = subprocess.run([PYTHON, "-m", "hf_bert_tasks.export", str(folder), str(out), "--text",
                             "john visited paris with mary smith", "--text", " ".join(WORDS * 3)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {out / 'model.onnx'}" in result.stdout
    assert "parity: ONNX Runtime and PyTorch find the same" in result.stdout and "in 2 sample texts" in result.stdout
    assert (out / "model.onnx").is_file() and (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.safetensors"))  # the weights are in the ONNX file only
    texts = random_texts(seed=3, count=8)
    reference = NerPredictor(model, AutoTokenizer.from_pretrained(folder))(texts)
    assert [entity_keys(e) for e in OnnxNerPredictor(out / "model.onnx", out)(texts)] == \
        [entity_keys(e) for e in reference]
    bad = subprocess.run([PYTHON, "-m", "hf_bert_tasks.export", str(tmp_path / "nothing"), str(out)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "is not a model folder" in bad.stderr


def test_int8_export_runs_in_the_onnx_predictor_within_the_bound(exported, tmp_path, capsys):
    """`--quantize int8`: model.onnx holds integer matrix products and the labels and CRF scores still; the predictor
    runs it; the parity line says the measured disagreement."""
    from transformers import AutoTokenizer

    from hf_bert_tasks.export import INT8_MAX_DISAGREEMENT, main

    folder, onnx_path, model = exported
    out = tmp_path / "int8"
    texts = ["john visited paris with mary smith", " ".join(WORDS * 3)]
    assert main([str(folder), str(out), "--quantize", "int8", *[arg for t in texts for arg in ("--text", t)]]) == 0
    printed = capsys.readouterr().out
    assert f"wrote int8 {out / 'model.onnx'}" in printed and "int8: " in printed and "% of the entities differ" in printed
    graph = onnx.load(str(out / "model.onnx"))
    weights = {initializer.name for initializer in graph.graph.initializer}
    assert any(node.op_type == "MatMulInteger" for node in graph.graph.node)
    # every product with a weight is an integer one; the float MatMuls left multiply activations (attention)
    assert not [node.name for node in graph.graph.node if node.op_type == "MatMul" and set(node.input) & weights]
    assert {entry.key for entry in graph.metadata_props} >= {"hf_bert_tasks.labels", METADATA_CRF}
    assert not (out / "model.int8.onnx").exists()
    assert (out / "model.onnx").stat().st_size < onnx_path.stat().st_size  # the tiny model is mostly embeddings
    reference = NerPredictor(model, AutoTokenizer.from_pretrained(folder))(texts)
    got = OnnxNerPredictor(out / "model.onnx", out)(texts)
    found = [set(entity_keys(e)) for e in reference], [set(entity_keys(e)) for e in got]
    shared = sum(len(a & b) for a, b in zip(*found))
    total = sum(len(a) for a in found[0]) + sum(len(b) for b in found[1])
    assert total and 1 - 2 * shared / total <= INT8_MAX_DISAGREEMENT


def test_int8_export_beyond_the_bound_is_refused_with_the_measure_and_keeps_float32(exported, tmp_path, capsys,
                                                                                     monkeypatch):
    import hf_bert_tasks.export as export

    folder, _, _ = exported
    monkeypatch.setattr(export, "INT8_MAX_DISAGREEMENT", -1.0)  # any int8 file is beyond it
    out = tmp_path / "refused"
    assert export.main([str(folder), str(out), "--quantize", "int8", "--text", "john visited paris"]) == 1
    error = capsys.readouterr().err
    assert "error: the int8 model's entities in the 1 sample texts differ from PyTorch's by" in error
    assert f"int8 refused; {out / 'model.onnx'} is the float32 export" in error
    assert "MatMulInteger" not in {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert not (out / "model.int8.onnx").exists()


def test_command_line_refuses_to_overwrite_another_model(exported, tmp_path, capsys):
    """OUT_DIR holding another trained model: refused before anything is written, so that model still loads; a new,
    empty or previously exported folder is accepted."""
    from hf_bert_tasks.export import export_folder_problem, main

    folder, _, _ = exported
    other = tmp_path / "other-model"
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("onnx"))
    (other / "all_results.json").write_text('{"eval_f1": 0.9}')
    before = {path.name: path.read_bytes() for path in other.iterdir() if path.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(other)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"OUT_DIR {other} is not empty and holds no previous export" in error and "overwrite a model" in error
    assert {path.name: path.read_bytes() for path in other.iterdir() if path.is_file()} == before
    NerPredictor.from_pretrained(str(other))  # still loads
    previous = tmp_path / "previous"
    previous.mkdir()
    for name in ("model.onnx", "config.json", "tokenizer.json"):
        (previous / name).write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("")
    assert [export_folder_problem(tmp_path / name) for name in ("new", "empty", "previous")] == [None] * 3
    assert "is a file" in export_folder_problem(tmp_path / "a-file")


def conll_model_dir():
    """The CoNLL-2003 CRF model the benchmarks train (runs/conll_minilm_crf, or HF_BERT_TASKS_CONLL_MODEL)."""
    path = Path(os.environ.get("HF_BERT_TASKS_CONLL_MODEL", ROOT / "runs" / "conll_minilm_crf"))
    if not (path / "config.json").is_file():
        pytest.skip(f"no CoNLL-2003 model at {path}: train one with recipes/ner.py (benchmarks/README.md, "
                    "'Pipeline') or set HF_BERT_TASKS_CONLL_MODEL")
    return path


@pytest.mark.slow
@pytest.mark.data
def test_onnx_predictor_equals_pytorch_on_the_conll_dev_set(tmp_path):
    """Every sentence of CoNLL-2003 dev (eng.testa): ONNX Runtime finds PyTorch's entities."""
    from hf_bert_tasks.ner.data import read_conll

    dev = shared_data_path("conll2003", "eng.testa")
    model_dir = conll_model_dir()
    onnx_path = export_onnx(model_dir, tmp_path / "model.onnx")
    sentences = read_conll(dev)["tokens"]
    assert len(sentences) == 3250
    reference = NerPredictor.from_pretrained(str(model_dir)).predict_words(sentences)
    got = OnnxNerPredictor(onnx_path, model_dir).predict_words(sentences)
    assert got[0] == reference[0]
    assert sum(tag != "O" for tags in got[0] for tag in tags) > 3000
