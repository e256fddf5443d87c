"""The global pointer span model (hf_bert_tasks/modeling/*_global_pointer.py): its loss, decoding and window merging
against brute force, save/load, and its pipeline loaded as remote code where `import hf_bert_tasks` fails."""

import itertools
import json
import os
import math
import random
import subprocess

import pytest
import torch
from transformers import AutoModel, AutoModelForTokenClassification, pipeline

from conftest import PYTHON, ROOT, WORDS, shared_data_path, tiny_bert_config, tiny_tokenizer, without_package
from hf_bert_tasks import BertGlobalPointerConfig, BertGlobalPointerForSpanClassification
from hf_bert_tasks.modeling.modeling_bert_global_pointer import (
    multilabel_categorical_crossentropy, rotary_embedding, span_mask)
from hf_bert_tasks.modeling.tagging import best_flat_spans, split_words
from hf_bert_tasks.ner.predictor import NerPredictor
from hf_bert_tasks.modeling.windows import (
    WindowCollator, encode_words, merge_span_windows, window_span_labels)

TYPES = ["LOC", "PER", "ORG"]


def make_model(seed=0, **kwargs) -> BertGlobalPointerForSpanClassification:
    torch.manual_seed(seed)
    config = BertGlobalPointerConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(TYPES)),
                                     label2id={t: i for i, t in enumerate(TYPES)}, head_size=8,
                                     **{"max_seq_length": 16, "stride": 6, **kwargs})
    return BertGlobalPointerForSpanClassification(config).eval()


# -- the loss -----------------------------------------------------------------------------------------------------


def brute_force_loss(scores, targets, mask):
    """log(1 + sum_neg e^s + sum_pos e^-s + sum_{neg,pos} e^(s_neg - s_pos)), by loops over the candidates."""
    candidates = [i for i in range(len(scores)) if mask[i]]
    positives = [scores[i] for i in candidates if targets[i]]
    negatives = [scores[i] for i in candidates if not targets[i]]
    total = 1.0 + sum(math.exp(s) for s in negatives) + sum(math.exp(-s) for s in positives)
    total += sum(math.exp(n - p) for n in negatives for p in positives)
    return math.log(total)


def test_the_loss_equals_the_pairwise_cross_entropy_by_brute_force():
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        n = int(torch.randint(1, 9, (1,), generator=generator))
        scores = torch.randn(3, n, generator=generator, dtype=torch.float64) * 3
        mask = torch.rand(3, n, generator=generator) < 0.7
        targets = (torch.rand(3, n, generator=generator) < 0.3) & mask
        got = multilabel_categorical_crossentropy(scores, targets, mask)
        expected = [brute_force_loss(scores[r].tolist(), targets[r].tolist(), mask[r].tolist()) for r in range(3)]
        assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_the_models_loss_is_the_mean_over_rows_and_types_of_the_spans_of_words():
    model = make_model()
    ids = torch.randint(5, 60, (2, 7), generator=torch.Generator().manual_seed(1))
    tag_mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0], [0, 1, 0, 1, 1, 0, 0]], dtype=torch.bool)
    gold = {(0, 0, 1, 2), (0, 2, 1, 5), (0, 0, 2, 2), (1, 1, 3, 4)}  # (row, type, start, end inclusive)
    labels = torch.full((2, 3, 3), -100)
    for row in (0, 1):
        for k, spans in enumerate(sorted(g[1:] for g in gold if g[0] == row)):
            labels[row, k] = torch.tensor(spans)
    output = model(input_ids=ids, tag_mask=tag_mask, labels=labels)
    with torch.no_grad():
        scores = model.span_head(model.encoder(input_ids=ids).last_hidden_state)  # eval: no dropout
    expected = []
    for row, kind in itertools.product(range(2), range(len(TYPES))):
        words = [p for p in range(7) if tag_mask[row, p]]
        spans = [(i, j) for i in words for j in words if i <= j]
        expected.append(brute_force_loss([float(scores[row, kind, i, j]) for i, j in spans],
                                         [(row, kind, i, j) in gold for i, j in spans], [True] * len(spans)))
    assert output.loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    # Outside the spans of words the logits are a finite "never".
    outside = ~span_mask(tag_mask).expand_as(output.logits)
    assert bool((output.logits[outside] == -1e4).all())


def test_rotary_positions_make_the_score_depend_on_the_distance_only():
    generator = torch.Generator().manual_seed(2)
    q, k = torch.randn(8, generator=generator), torch.randn(8, generator=generator)
    turned_q = rotary_embedding(q.expand(1, 12, 8).clone())[0]
    turned_k = rotary_embedding(k.expand(1, 12, 8).clone())[0]
    scores = turned_q @ turned_k.T  # scores[m, n] for q at position m, k at position n
    for distance in range(-3, 4):
        diagonal = torch.diagonal(scores, offset=distance)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 1)[0], torch.diagonal(scores, 2)[0])


# -- decoding -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.7])
def test_decoding_finds_every_span_above_the_threshold_by_brute_force(threshold):
    model = make_model()
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, len(TYPES), 6, 6, generator=generator)
    tag_mask = torch.rand(3, 6, generator=generator) < 0.7
    logits = logits.masked_fill(~span_mask(tag_mask), -1e4)
    packed = model.decode(logits, threshold)
    for row in range(3):
        expected = sorted((k, i, j) for k in range(len(TYPES)) for i in range(6) for j in range(i, 6)
                          if tag_mask[row, i] and tag_mask[row, j] and logits[row, k, i, j] > threshold)
        got = packed[row][packed[row][:, 0] >= 0]
        assert sorted(tuple(int(x) for x in span[:3]) for span in got.tolist()) == expected
        # Sorted by start, end, type; probabilities are the sigmoid of the scores.
        assert [tuple(int(x) for x in s[:3]) for s in got.tolist()] == \
            sorted(expected, key=lambda s: (s[1], s[2], s[0]))
        for k, i, j, p in got.tolist():
            assert p == pytest.approx(float(logits[row, int(k), int(i), int(j)].sigmoid()))


def test_flat_decoding_is_the_best_non_overlapping_subset_by_brute_force():
    rng = random.Random(4)
    for _ in range(200):
        spans = []
        for _ in range(rng.randint(0, 7)):
            start = rng.randint(0, 8)
            spans.append((rng.choice(TYPES), start, start + rng.randint(1, 4), rng.random()))
        best = max((subset for r in range(len(spans) + 1) for subset in itertools.combinations(spans, r)
                    if all(a[2] <= b[1] or b[2] <= a[1] for a, b in itertools.combinations(subset, 2))),
                   key=lambda subset: sum(s[3] for s in subset))
        got = best_flat_spans(spans)
        assert sorted(got) == sorted(best)
        assert [s[1] for s in got] == sorted(s[1] for s in got)


# -- windows ------------------------------------------------------------------------------------------------------


def nested_sentences(rng, count=6, length=60):
    """Sentences of tiny-vocabulary words with random nested and overlapping entities `(type id, start, end)`."""
    sentences = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(length)]
        entities = set()
        for _ in range(length // 3):
            start = rng.randrange(length)
            entities.add((rng.randrange(len(TYPES)), start, min(length, start + rng.randint(1, 3))))
        sentences.append((words, sorted(entities)))
    return sentences


def test_window_merging_returns_each_span_once_with_spans_crossing_window_edges():
    """A perfect model per window (it finds the gold spans that lie whole in the window) merges back to exactly the
    gold spans of each sentence, although many of them are cut by some window's edge."""
    rng = random.Random(5)
    sentences = nested_sentences(rng)
    windows = encode_words(tiny_tokenizer(), [w for w, _ in sentences], max_length=16, stride=6, scheme="BIO",
                           strategy="first")
    window_spans, crossing = [], 0
    for ids, e in zip(windows["word_ids"], windows["example_index"]):
        labels = window_span_labels(ids, sentences[e][1])
        window_spans.append([(k, s, t, 0.9) for k, s, t in labels])
        own = {w for w in ids if w >= 0}
        crossing += sum(1 for _, s, t in sentences[e][1] if (s in own) != (t - 1 in own))
    assert len(set(windows["example_index"])) == len(sentences) and len(windows["word_ids"]) > 3 * len(sentences)
    assert crossing > 10
    merged = merge_span_windows(windows["word_ids"], windows["example_index"], window_spans, len(sentences))
    for (_, gold), got in zip(sentences, merged):
        assert [(k, s, t) for k, s, t, _ in got] == sorted(gold, key=lambda g: (g[1], g[2], g[0]))


def test_a_span_is_judged_by_the_window_where_it_has_the_most_context():
    rng = random.Random(6)
    words = [rng.choice(WORDS) for _ in range(40)]
    windows = encode_words(tiny_tokenizer(), [words], max_length=16, stride=6, scheme="BIO", strategy="first")
    word_ids = windows["word_ids"]
    # A one-word span present in two windows: only the window where its piece is farther from an edge counts.
    shared = next(w for w in range(40) if sum(w in ids for ids in word_ids) == 2)
    first, second = [i for i, ids in enumerate(word_ids) if shared in ids]
    positions = [list(word_ids[i]).index(shared) for i in (first, second)]
    contexts = [min(p, len(word_ids[i]) - 1 - p) for i, p in zip((first, second), positions)]
    best = (first, second)[contexts[1] > contexts[0]]
    for found_in in (first, second):
        spans = [[] for _ in word_ids]
        spans[found_in] = [(0, positions[(first, second).index(found_in)],
                            positions[(first, second).index(found_in)], 0.8)]
        merged = merge_span_windows(word_ids, windows["example_index"], spans, 1)
        assert merged == ([[(0, shared, shared + 1, 0.8)]] if found_in == best else [[]])


def test_the_collator_pads_span_labels_to_the_most_spans():
    batch = WindowCollator(0)([{"input_ids": [2, 7, 3], "labels": [[0, 1, 1], [1, 1, 1]]},
                               {"input_ids": [2, 3], "labels": []}])
    assert batch["labels"].tolist() == [[[0, 1, 1], [1, 1, 1]], [[-100] * 3, [-100] * 3]]


# -- the model on disk and as remote code -------------------------------------------------------------------------


@pytest.mark.parametrize("efficient", [False, True])
def test_save_and_load_keep_every_parameter(tmp_path, efficient):
    model = make_model(efficient=efficient)
    model.save_pretrained(tmp_path)
    for auto in (AutoModelForTokenClassification, AutoModel):
        loaded = auto.from_pretrained(tmp_path, trust_remote_code=True)
        assert type(loaded) is BertGlobalPointerForSpanClassification
        assert loaded.config.efficient is efficient
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
    # The folder carries what the model needs, and nothing of the CRF.
    names = {p.name for p in tmp_path.glob("*.py")}
    assert {"modeling_bert_global_pointer.py", "pipeline_bert_global_pointer.py", "windows.py"} <= names
    assert "crf.py" not in names


def trained_model():
    """A tiny model fitted on one sentence with nested entities: it must find exactly them."""
    model = make_model(seed=1, max_seq_length=32)
    model.train()
    tokenizer = tiny_tokenizer()
    words = "john smith of the bank of paris visited berlin".split()
    gold = [(2, 0, 7), (1, 0, 2), (0, 6, 7), (0, 8, 9)]  # ORG "john smith of the bank of paris" holds PER and LOC
    windows = encode_words(tokenizer, [words], max_length=32, stride=8, scheme="BIO", strategy="first")
    features = [{"input_ids": windows["input_ids"][0], "attention_mask": windows["attention_mask"][0],
                 "tag_mask": windows["tag_mask"][0],
                 "labels": window_span_labels(windows["word_ids"][0], gold)}]
    batch = WindowCollator(0)(features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model.eval(), " ".join(words), gold


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("gp-model")
    model, text, gold = trained_model()
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path, model, text, gold


def test_a_fitted_model_gives_nested_entities_through_its_pipeline(saved):
    path, model, text, gold = saved
    ner = model.pipeline_class()(model=model, tokenizer=tiny_tokenizer())
    entities = ner(text)
    words = split_words(text)
    expected = [(TYPES[k], words[s][1], words[t - 1][2]) for k, s, t in gold]
    assert sorted((e["entity_group"], e["start"], e["end"]) for e in entities) == sorted(expected)
    assert all(e["word"] == text[e["start"]:e["end"]] and 0.5 < e["score"] <= 1 for e in entities)
    # Flat decoding keeps the non-overlapping entities whose scores sum highest: the outer one, or what it holds.
    flat = ner(text, decode="flat")
    assert all(a["end"] <= b["start"] for a, b in zip(flat, flat[1:]))
    assert ner(text, ignore_labels=["ORG"]) == [e for e in entities if e["entity_group"] != "ORG"]
    assert ner("") == [] and ner([text, ""]) == [entities, []]
    # NerPredictor gives the same entities in its own dicts.
    predicted = NerPredictor(model, tiny_tokenizer())([text, ""])
    assert predicted[1] == [] and [(e["type"], e["start"], e["end"], e["text"]) for e in predicted[0]] == \
        [(e["entity_group"], e["start"], e["end"], e["word"]) for e in entities]
    with pytest.raises(TypeError, match="text must be a str, got int"):
        ner(5)


def test_a_bfloat16_span_model_finds_the_same_entities_through_the_pipeline_and_the_predictor(saved):
    """`dtype=torch.bfloat16` at both doors (issue 26): the fitted entities survive bf16 weights."""
    path, model, text, _ = saved
    expected = model.pipeline_class()(model=model, tokenizer=tiny_tokenizer())(text)
    ner = pipeline("token-classification", model=str(path), trust_remote_code=True, dtype=torch.bfloat16)
    assert ner.model.dtype == torch.bfloat16
    assert [(e["entity_group"], e["start"], e["end"]) for e in ner(text)] == \
        [(e["entity_group"], e["start"], e["end"]) for e in expected]
    predictor = NerPredictor.from_pretrained(path, dtype="bfloat16")
    assert [(e["type"], e["start"], e["end"]) for e in predictor(text)] == \
        [(e["entity_group"], e["start"], e["end"]) for e in expected]


def test_the_pipeline_without_the_package_gives_the_same_nested_entities(saved, tmp_path):
    path, model, text, _ = saved
    long_text = " ".join(WORDS[i * 7 % len(WORDS)] for i in range(120)) + " " + text
    texts = [text, long_text, ""]
    script = without_package(f"""
        import json, sys
        from transformers import pipeline
        ner = pipeline("token-classification", model={str(path)!r}, trust_remote_code=True, device="cpu")
        assert type(ner).__name__ == "BertGlobalPointerPipeline", type(ner)
        assert type(ner).__module__.startswith("transformers_modules"), type(ner).__module__
        json.dump({{"one_by_one": [ner(t) for t in {texts!r}], "batched": ner({texts!r}, batch_size=4)}},
                  open("out.json", "w"))
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    expected = model.pipeline_class()(model=model, tokenizer=tiny_tokenizer())(texts)
    assert len(expected[0]) == 4 and len(expected[1]) >= 4  # nested ones included; the long text has many windows
    for got in (out["one_by_one"], out["batched"]):
        assert [[(e["entity_group"], e["start"], e["end"], e["word"]) for e in r] for r in got] == \
            [[(e["entity_group"], e["start"], e["end"], e["word"]) for e in r] for r in expected]
        assert [e["score"] for r in got for e in r] == pytest.approx([e["score"] for r in expected for e in r],
                                                                      abs=1e-5)
        assert all(e["word"] == t[e["start"]:e["end"]] for t, r in zip(texts, got) for e in r)


def test_the_config_refuses_tags_as_labels():
    with pytest.raises(ValueError, match="entity types, not tags"):
        BertGlobalPointerConfig(encoder=tiny_bert_config(), id2label={0: "O", 1: "B-PER"})
    with pytest.raises(ValueError, match="decode must be one of"):
        BertGlobalPointerConfig(encoder=tiny_bert_config(), id2label={0: "PER"}, decode="greedy")


def test_onnx_export_decodes_the_spans_outside_the_graph_like_pytorch(saved, tmp_path):
    pytest.importorskip("onnxruntime")
    from hf_bert_tasks.export import OnnxNerPredictor, OnnxSpanClassifier, check_parity, export_onnx

    path, model, text, _ = saved
    onnx_path = export_onnx(path, tmp_path / "model.onnx")
    predictor = OnnxNerPredictor(onnx_path, path, threads=1)
    assert isinstance(predictor.model, OnnxSpanClassifier)
    long_text = " ".join(WORDS[i * 5 % len(WORDS)] for i in range(80)) + " " + text
    expected = NerPredictor(model, tiny_tokenizer())([text, long_text])
    got = predictor([text, long_text])
    assert len(expected[0]) == 4  # the nested entities
    assert [[(e["type"], e["start"], e["end"]) for e in r] for r in got] == \
        [[(e["type"], e["start"], e["end"]) for e in r] for r in expected]
    report = check_parity(path, onnx_path, texts=[text, long_text])
    assert report["mismatches"] == [] and report["max_score_difference"] < 1e-4


def test_lora_trains_the_span_head_in_full_and_merges_into_an_ordinary_folder(tmp_path):
    from hf_bert_tasks.lora import apply_lora, save_merged

    model = make_model(seed=3)
    peft_model = apply_lora(model, r=4)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("span_head" in name for name in trainable) and any("lora_" in name for name in trainable)
    assert not any("encoder" in name and "lora_" not in name for name in trainable)
    ids = torch.randint(5, 60, (2, 7), generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([[[0, 1, 2]], [[1, 3, 3]]])
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        peft_model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    save_merged(peft_model, tmp_path)
    merged = AutoModelForTokenClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_the_predictor_command_prints_the_nested_entities(saved):
    path, model, text, _ = saved
    result = subprocess.run([PYTHON, "-m", "hf_bert_tasks.predictor", str(path), text], capture_output=True,
                            text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    (printed,) = [json.loads(line) for line in result.stdout.splitlines()]
    expected = NerPredictor(model, tiny_tokenizer())(text)
    assert printed["text"] == text and len(printed["entities"]) == 4
    assert printed["entities"] == json.loads(json.dumps(expected))


def test_the_space_highlights_the_outermost_entities_and_lists_the_nested_ones(saved):
    pytest.importorskip("gradio")
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_space_app_gp", ROOT / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    _, model, text, gold = saved
    predictor = NerPredictor(model, tiny_tokenizer())
    highlighted, rows, status = app.tag_entities(predictor, text, 1000)
    entities = predictor(text)
    outer = [e for e in entities if not any(o is not e and o["start"] <= e["start"] and e["end"] <= o["end"]
                                            for o in entities)]
    assert len(outer) == 2 and len(entities) == 4  # the ORG (holding a PER and a LOC) and the other LOC
    assert [(h["start"], h["end"]) for h in highlighted["entities"]] == [(e["start"], e["end"]) for e in outer]
    assert all(h["entity"] in app.label_colours(predictor) for h in highlighted["entities"])
    org = next(e for e in entities if e["type"] == "ORG")
    inside = {(row[2], row[3]): row[5] for row in rows}
    assert inside[(org["start"], org["end"])] == ""
    for e in entities:
        if e is not org and e in outer:
            assert inside[(e["start"], e["end"])] == ""
        elif e is not org:
            assert inside[(e["start"], e["end"])] == f"ORG {org['text']!r} [{org['start']}:{org['end']}]"
    assert "2 of them inside another" in status


def test_the_model_card_describes_the_span_model_and_its_code_runs(saved, capsys):
    from hf_bert_tasks.hub import render_model_card

    path, _, text, _ = saved
    results = {"eval_f1": 0.8, "eval_precision": 0.7, "eval_recall": 0.9, "eval_nested_recall": 0.6,
               "eval_PER_f1": 0.5}
    card = render_model_card(path, results, repo_id="alice/gp", example_text=text)  # validated as it renders
    assert "global pointer span head" in card and "nested" in card and "trust_remote_code=True" in card
    assert "Exact-span micro scores" in card and "`PER`" in card and "B-PER" not in card
    # The card's lowest-level example runs on the model and prints its nested spans.
    code = next(block for block in card.split("```python")[1:] if "model.decode(logits)" in block)
    code = code.split("```")[0].replace('"alice/gp"', repr(str(path)))
    exec(compile(code, "card", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and any(line.startswith("ORG") for line in printed)


def test_onnx_finds_the_pytorch_spans_on_the_genia_dev_set(tmp_path):
    """Every sentence of GENIA dev through a trained global pointer (benchmarks/ner_nested.py's model, or
    HF_BERT_TASKS_GENIA_MODEL): ONNX Runtime with the decoding outside the graph finds PyTorch's nested spans."""
    pytest.importorskip("onnxruntime")
    from pathlib import Path

    from hf_bert_tasks.export import OnnxNerPredictor, export_onnx

    model_dir = Path(os.environ.get("HF_BERT_TASKS_GENIA_MODEL",
                                    ROOT / "runs" / "benchmarks" / "ner_nested_genia" / "global_pointer"))
    if not (model_dir / "model.safetensors").is_file():
        pytest.skip(f"no model at {model_dir}: run python benchmarks/ner_nested.py --dataset genia")
    dev = [json.loads(line)["tokens"] for line in
           shared_data_path("genia", "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(dev) == 1668
    onnx_path = export_onnx(model_dir, tmp_path / "model.onnx")
    reference = NerPredictor.from_pretrained(str(model_dir)).predict_words(dev)
    got = OnnxNerPredictor(onnx_path, model_dir, threads=1).predict_words(dev)
    assert [[s[:3] for s in spans] for spans in got] == [[s[:3] for s in spans] for spans in reference]
    assert max(abs(a[3] - b[3]) for x, y in zip(got, reference) for a, b in zip(x, y)) < 1e-3
    nested = sum(1 for spans in got for a in spans for b in spans if a is not b and a[1] <= b[1] and b[2] <= a[2])
    assert sum(map(len, got)) > 1000 and nested > 10  # real predictions, nested ones among them


def test_a_batch_whose_span_scores_exceed_the_guard_runs_in_slices_with_the_same_entities(saved, monkeypatch):
    from hf_bert_tasks.modeling import pipeline_bert_global_pointer

    _, model, text, _ = saved
    texts = [text, " ".join(WORDS[i * 3 % len(WORDS)] for i in range(60)) + " " + text, text + " " + text]
    ner = model.pipeline_class()(model=model, tokenizer=tiny_tokenizer())
    expected = ner(texts, batch_size=8)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda **kwargs: calls.append(len(kwargs["input_ids"])) or forward(**kwargs))
    monkeypatch.setattr(pipeline_bert_global_pointer, "MAX_SPAN_SCORES", len(TYPES) * 32 * 32 * 2)
    assert ner(texts, batch_size=8) == expected
    assert max(calls) <= 2 and len(calls) >= 3  # one batch of windows of up to 32 tokens, two at a time


def test_the_corpus_command_writes_a_span_models_nested_entities(saved, tmp_path, capsys):
    from hf_bert_tasks.predictor.__main__ import main

    path, model, text, gold = saved
    words = text.split()
    (tmp_path / "texts.txt").write_text(text + "\n\n", encoding="utf-8")
    main([str(path), "--input", str(tmp_path / "texts.txt"), "--output", str(tmp_path / "out.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["entities"] == json.loads(json.dumps(NerPredictor(model, tiny_tokenizer())(text)))
    assert len(rows[0]["entities"]) == 4 and rows[1]["entities"] == []
    # Pre-split tokens: the entities as word spans, the layout of a `spans` file (it reads back as one).
    (tmp_path / "tokens.jsonl").write_text(json.dumps({"id": 7, "tokens": words}) + "\n", encoding="utf-8")
    main([str(path), "--input", str(tmp_path / "tokens.jsonl"), "--output", str(tmp_path / "spans.jsonl")])
    (row,) = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((e["type"], e["start"], e["end"]) for e in row["entities"]) == \
        sorted((TYPES[k], s, t) for k, s, t in gold)
    with pytest.raises(SystemExit):
        main([str(path), "--input", str(tmp_path / "tokens.jsonl"), "--output", str(tmp_path / "out.conll")])
    assert "entities may nest: CoNLL columns cannot hold them" in capsys.readouterr().err
