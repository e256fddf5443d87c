"""The global pointer head through recipes/ner.py, and what it reads and scores: span files (GENIA's layout) with
nested entities, CLUENER with its nested mentions kept, flat BIO files as spans; exact-span scores and nested recall."""

import json
import random
import warnings

import pytest

from conftest import WORDS, shared_data_path
from hf_bert_tasks.modeling.pipeline_bert_crf import WordSequences
from hf_bert_tasks.ner.data import NerDataError, NerDataWarning, detect_format, load_ner_dataset
from hf_bert_tasks.ner.metrics import span_scores
from test_ner_recipe import SAMPLE, run_recipe

NESTED = [  # GENIA-like: a DNA entity holding a protein, and a flat one
    {"tokens": ["john", "smith", "bank", "group", "met", "anna"],
     "entities": [{"start": 0, "end": 2, "type": "PER"}, {"start": 0, "end": 4, "type": "ORG"},
                  {"start": 5, "end": 6, "type": "PER"}]},
    {"tokens": ["paris", "city", "bank", "was", "new"],
     "entities": [{"start": 0, "end": 1, "type": "LOC"}, {"start": 0, "end": 3, "type": "ORG"},
                  {"start": 1, "end": 3, "type": "ORG"}]},  # crossing nothing, nested twice in the outer ORG
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_span_files_keep_every_entity_and_tag_the_outermost(tmp_path):
    path = write_jsonl(tmp_path / "nested.jsonl", NESTED)
    assert detect_format(path) == "spans"
    with pytest.warns(NerDataWarning, match="3 nested or overlapping entities dropped"):
        flat = load_ner_dataset(train_file=path)["train"]
    names = flat.features["ner_tags"].feature.names
    assert [[names[t] for t in row] for row in flat["ner_tags"]] == [
        ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-PER"], ["B-ORG", "I-ORG", "I-ORG", "O", "O"]]
    assert "entities" not in flat.column_names
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept, not dropped: no warning
        kept = load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO", nested="keep")["train"]
    assert [[(e["start"], e["end"], e["type"]) for e in row] for row in kept["entities"]] == [
        sorted((e["start"], e["end"], e["type"]) for e in r["entities"]) for r in NESTED]


@pytest.mark.parametrize("entity, message", [({"start": 2, "end": 2, "type": "PER"}, "start < end"),
                                             ({"start": 0, "end": 9, "type": "PER"}, "within the 6 tokens"),
                                             ({"start": 0, "end": 1, "type": "two words"}, "without spaces"),
                                             ("PER", "start < end")])
def test_a_bad_span_is_an_error_at_its_line(tmp_path, entity, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [NESTED[1], {**NESTED[0], "entities": [entity]}])
    with pytest.raises(NerDataError, match=rf"bad.jsonl:2: .*{message}"):
        load_ner_dataset(train_file=path, nested="keep")


def test_flat_files_give_their_entities_as_spans():
    data = load_ner_dataset(train_file=SAMPLE / "en_train.conll", source_scheme="BIO", target_scheme="BIO",
                            nested="keep")["train"]
    names = data.features["ner_tags"].feature.names
    for tags, entities in zip(data["ner_tags"][:50], data["entities"][:50]):
        tags = [names[t] for t in tags]
        for e in entities:
            assert tags[e["start"]] == f"B-{e['type']}" and all(t == f"I-{e['type']}"
                                                                 for t in tags[e["start"] + 1:e["end"]])
        assert sum(t.startswith("B-") for t in tags) == len(entities)


def test_cluener_keeps_its_nested_mentions_for_the_span_head():
    path = shared_data_path("cluener2020", "train.json")
    record = json.loads(path.read_text(encoding="utf-8").splitlines()[1506])
    data = load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO", nested="keep")["train"]
    expected = sorted((start, end + 1, kind) for kind, mentions in record["label"].items()
                      for spans in mentions.values() for start, end in spans)
    assert [(e["start"], e["end"], e["type"]) for e in data[1506]["entities"]] == expected
    assert len(expected) == 3  # a book title holding two company names


def test_span_scores_count_exact_spans_and_nested_recall():
    gold = [[(0, 4, "ORG"), (0, 2, "PER"), (5, 6, "PER")], [(0, 1, "LOC")]]
    found = [[(0, 4, "ORG"), (0, 3, "PER"), (5, 6, "PER"), (5, 6, "PER")], [(0, 1, "ORG")]]
    scores = span_scores(gold, found)
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["nested_recall"] == pytest.approx(1 / 2) and scores["nested_support"] == 2
    assert scores["per_type"]["PER"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert "ORG" in scores["per_type"] and scores["per_type"]["LOC"]["recall"] == 0.0


def nested_corpus(path, n, seed):
    """Sentences of the tiny vocabulary where a PER ("john smith") sits inside an ORG ("john smith bank")."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        tokens = [rng.choice(WORDS[:20]) for _ in range(rng.randint(0, 4))]
        start = len(tokens)
        tokens += ["john", "smith", "bank"] if rng.random() < 0.5 else ["mary", "smith"]
        entities = [{"start": start, "end": start + 2, "type": "PER"}]
        if tokens[-1] == "bank":
            entities.append({"start": start, "end": start + 3, "type": "ORG"})
        tokens += [rng.choice(WORDS[:20]) for _ in range(rng.randint(0, 4))]
        records.append({"tokens": tokens, "entities": entities})
    return write_jsonl(path, records)


def test_the_recipe_trains_a_global_pointer_whose_scores_are_the_pipelines(tiny_encoder_dir, tmp_path):
    from hf_bert_tasks.ner.predictor import NerPredictor

    train, dev = nested_corpus(tmp_path / "train.jsonl", 96, 0), nested_corpus(tmp_path / "dev.jsonl", 24, 1)
    out = tmp_path / "gp"
    run_recipe("--model_name_or_path", tiny_encoder_dir, "--output_dir", out, "--head", "global_pointer",
               "--train_file", train, "--validation_file", dev, "--test_file", dev, "--do_train", "--do_eval",
               "--do_predict", "--num_train_epochs", 8, "--per_device_train_batch_size", 8, "--learning_rate", 1e-3,
               "--head_learning_rate", 1e-2, "--max_seq_length", 10, "--stride", 3, "--save_strategy", "no",
               "--report_to", "none", "--seed", 1, "--use_cpu")
    results = json.loads((out / "all_results.json").read_text())
    assert {"eval_f1", "eval_precision", "eval_recall", "eval_nested_recall", "eval_PER_f1", "eval_ORG_f1",
            "test_f1", "test_nested_recall"} <= set(results)
    assert results["eval_f1"] > 0.5 and results["eval_nested_recall"] > 0.5  # it learnt the nested entities
    # The recipe's evaluation equals the pipeline's spans on the same words (windows of 10 tokens).
    records = [json.loads(line) for line in dev.read_text().splitlines()]
    predictor = NerPredictor.from_pretrained(str(out))
    spans = predictor.pipeline(WordSequences([r["tokens"] for r in records]))
    gold = [[(e["start"], e["end"], e["type"]) for e in r["entities"]] for r in records]
    found = [[(start, end, kind) for kind, start, end, _ in sentence] for sentence in spans]
    assert span_scores(gold, found)["f1"] == pytest.approx(results["eval_f1"])
    predicted = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert [[(e["start"], e["end"], e["type"]) for e in p["entities"]] for p in predicted] == found
    assert [p["tokens"] for p in predicted] == [r["tokens"] for r in records]


def test_the_recipe_keeps_an_annotation_tools_nested_spans(tiny_encoder_dir, tmp_path):
    """A doccano export whose LOC entities all sit inside ORG ones: the span head learns LOC too (a flat reader
    would drop every one of them with a warning)."""
    text = "the bank of paris met john smith"
    record = {"text": text, "label": [[4, 17, "ORG"], [12, 17, "LOC"], [22, 32, "PER"]]}
    train = write_jsonl(tmp_path / "doccano.jsonl", [record] * 8)
    out = tmp_path / "gp"
    result = run_recipe("--model_name_or_path", tiny_encoder_dir, "--output_dir", out, "--head", "global_pointer",
                        "--train_file", train, "--do_train", "--max_steps", 1, "--per_device_train_batch_size", 4,
                        "--save_strategy", "no", "--report_to", "none", "--use_cpu")
    assert "dropped" not in result.stderr
    assert sorted(json.loads((out / "config.json").read_text())["id2label"].values()) == ["LOC", "ORG", "PER"]
