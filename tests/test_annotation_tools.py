"""Annotation tools (hf_bert_tasks/ner/annotation_tools.py): Label Studio JSON exports and doccano JSON lines read as
NER training data (words and BIO tags, checked by hand), their errors naming the record, and the round trip:
predictions written in both formats read back to the same spans."""

import json

import pytest
import torch

from conftest import tiny_bert_config, tiny_tokenizer
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.modeling.tagging import split_words
from hf_bert_tasks.ner.annotation_tools import write_doccano, write_labelstudio
from hf_bert_tasks.ner.data import NerDataError, NerDataWarning, detect_format, load_ner_dataset

TEXT = "Angela Weber flew from Dublin to Toronto."


def labelled(result_spans, text=TEXT, **task):
    return {"data": {"text": text}, "annotations": [{"result": [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": s, "end": e, "text": text[s:e], "labels": [t]}} for s, e, t in result_spans]}], **task}


def rows(path, format="auto"):
    data = load_ner_dataset(train_file=path, format=format)["train"]
    names = data.features["ner_tags"].feature.names
    return [(row["id"], row["tokens"], [names[t] for t in row["ner_tags"]]) for row in data]


def test_label_studio_export_reads_as_words_and_bio_tags(tmp_path):
    second = labelled([(0, 4, "PER"), (9, 14, "LOC")], text="Mary met in Paris!", id=7)
    second["annotations"].insert(0, {"was_cancelled": True, "result": [
        {"type": "labels", "value": {"start": 0, "end": 4, "labels": ["ORG"]}}]})
    second["annotations"][1]["result"].append({"type": "choices", "value": {"choices": ["news"]}})
    second["annotations"][1]["result"][1]["value"].update(start=12, end=17, text="Paris")
    tasks = [labelled([(0, 12, "PER"), (23, 29, "LOC"), (33, 40, "LOC")], id=3), second]
    (tmp_path / "export.json").write_text(json.dumps(tasks, indent=2), encoding="utf-8")
    assert detect_format(tmp_path / "export.json") == "labelstudio"
    assert rows(tmp_path / "export.json", "labelstudio") == rows(tmp_path / "export.json") == [
        ("3", ["Angela", "Weber", "flew", "from", "Dublin", "to", "Toronto", "."],
         ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"]),
        ("7", ["Mary", "met", "in", "Paris", "!"], ["B-PER", "O", "O", "B-LOC", "O"]),  # the cancelled one skipped
    ]


def test_doccano_both_layouts_and_unlabelled_texts(tmp_path):
    records = [{"text": TEXT, "label": [[23, 29, "LOC"], [0, 12, "PER"]]},
               {"id": 5, "text": "Mary met Anna.", "entities": [
                   {"id": 1, "start_offset": 9, "end_offset": 13, "label": "PER"}]},
               {"text": "nothing here"}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert detect_format(tmp_path / "data.jsonl") == "doccano"
    assert rows(tmp_path / "data.jsonl", "doccano") == [
        ("0", ["Angela", "Weber", "flew", "from", "Dublin", "to", "Toronto", "."],
         ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O", "O"]),
        ("5", ["Mary", "met", "Anna", "."], ["O", "O", "B-PER", "O"]),
        ("2", ["nothing", "here"], ["O", "O"]),
    ]


@pytest.mark.parametrize("record, message", [
    ({"text": TEXT, "label": [[0, 50, "PER"]]}, "record 1: span [0, 50) 'PER' is outside the text (41 characters)"),
    ({"text": TEXT, "label": [[0, 3, "PER"]]},
     "record 1: span [0, 3) 'PER' ('Ang') starts or ends inside a word; the words there are ['Angela']"),
    ({"text": TEXT, "label": [[0, 12, "PER"], [7, 17, "ORG"]]},
     "record 1: span [7, 17) 'ORG' overlaps span [0, 12) 'PER' (overlapping entities cannot be flat tags)"),
    ({"id": "x9", "text": TEXT, "label": [[0, "12", "PER"]]},
     "record 1 (id 'x9'): end must be an integer character offset, found '12'"),
    ({"text": TEXT, "label": [[0, 12]]}, "record 1: 'label' must be a list of [start, end, label] triples"),
    ({"text": "", "label": []}, "record 1: the text must be a non-empty string, found ''"),
])
def test_doccano_errors_name_the_record_and_its_line(tmp_path, record, message):
    good = {"text": "Mary met Anna.", "label": [[0, 4, "PER"]]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(NerDataError) as error:
        load_ner_dataset(train_file=tmp_path / "bad.jsonl", format="doccano")
    assert str(error.value).startswith(f"{tmp_path / 'bad.jsonl'}:3: {message}")


def test_nested_spans_are_kept_for_the_span_head_and_dropped_with_a_warning_for_flat_tags(tmp_path):
    """Issue 28: an annotation tool's overlapping spans. With nested="keep" (the global pointer head) every span is in
    the `entities` column, crossing ones too, and the tags hold the outer ones; by default a span inside another is
    dropped with a warning naming it; with "error" any overlap is refused."""
    text = "the Bank of Dublin office in Dublin"  # words 0..6; "Bank of Dublin" holds "Dublin"
    spans = [[4, 18, "ORG"], [12, 18, "LOC"], [29, 35, "LOC"]]
    (tmp_path / "data.jsonl").write_text(json.dumps({"text": text, "label": spans}) + "\n", encoding="utf-8")
    tasks = [labelled([(s, e, t) for s, e, t in spans], text=text, id=1)]
    (tmp_path / "export.json").write_text(json.dumps(tasks), encoding="utf-8")
    for path in (tmp_path / "data.jsonl", tmp_path / "export.json"):
        kept = load_ner_dataset(train_file=path, nested="keep")["train"]
        names = kept.features["ner_tags"].feature.names
        assert [names[t] for t in kept[0]["ner_tags"]] == ["O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "B-LOC"]
        assert kept[0]["entities"] == [{"start": 1, "end": 4, "type": "ORG"}, {"start": 3, "end": 4, "type": "LOC"},
                                       {"start": 6, "end": 7, "type": "LOC"}]
        with pytest.warns(NerDataWarning, match=r"1 nested entities dropped .*'Dublin' \(LOC\) inside 'Bank of "
                                                r"Dublin' \(ORG\)"):
            flat = load_ner_dataset(train_file=path)["train"]
        assert [names[t] for t in flat[0]["ner_tags"]] == [names[t] for t in kept[0]["ner_tags"]]
        assert "entities" not in flat.column_names
        with pytest.raises(NerDataError, match="span \\[12, 18\\) 'LOC' overlaps span \\[4, 18\\) 'ORG'"):
            load_ner_dataset(train_file=path, nested="error")
    crossing = [[4, 18, "ORG"], [12, 25, "LOC"]]  # "Dublin office" crosses the end of "Bank of Dublin"
    (tmp_path / "crossing.jsonl").write_text(json.dumps({"text": text, "label": crossing}) + "\n", encoding="utf-8")
    assert load_ner_dataset(train_file=tmp_path / "crossing.jsonl", nested="keep")["train"][0]["entities"] == [
        {"start": 1, "end": 4, "type": "ORG"}, {"start": 3, "end": 5, "type": "LOC"}]
    with pytest.raises(NerDataError, match="overlapping entities cannot be flat tags"):
        load_ner_dataset(train_file=tmp_path / "crossing.jsonl")


def test_label_studio_errors_name_the_task(tmp_path):
    wrong_text = labelled([(0, 12, "PER")], id=4)
    wrong_text["annotations"][0]["result"][0]["value"]["text"] = "Angela Webber"
    for task, message in [
        (wrong_text, "record 0 (id 4): span [0, 12) 'PER' reads 'Angela Weber', not its text 'Angela Webber'"),
        ({"id": 4, "data": {"text": TEXT}, "annotations": []}, "record 0 (id 4) has no annotation (nor predictions)"),
        ({"data": {"a": "x", "b": "y"}, "annotations": [{"result": []}]},
         "record 0: data has no 'text' field and 2 string fields (['a', 'b']); which one is the text?"),
    ]:
        (tmp_path / "export.json").write_text(json.dumps([task], indent=1), encoding="utf-8")
        with pytest.raises(NerDataError, match=f"^{tmp_path / 'export.json'}:2: ") as error:
            load_ner_dataset(train_file=tmp_path / "export.json", format="labelstudio")
        assert message in str(error.value)


def test_predictions_written_for_both_tools_read_back_to_the_same_spans(tmp_path):
    from hf_bert_tasks.ner.predictor import NerPredictor

    labels = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    torch.manual_seed(3)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    model = BertCrfForTokenClassification(config).eval()
    with torch.no_grad():
        model.crf.transitions.normal_(0, 1)  # random tags with entities of several words
        model.classifier.bias[0] -= 2.0  # fewer O
    texts = [TEXT, "john smith visited paris with the ibm team", "明朝建立于1368年，开国皇帝是朱元璋。", "mary met anna"]
    entities = NerPredictor(model, tiny_tokenizer())(texts)
    assert sum(map(len, entities)) > 3 and any(e["end"] - e["start"] > 6 for row in entities for e in row)

    write_labelstudio(tmp_path / "tasks.json", texts, entities)
    write_doccano(tmp_path / "tasks.jsonl", texts, entities)
    expected = [[(e["type"], e["start"], e["end"]) for e in row] for row in entities]
    for path, format in ((tmp_path / "tasks.json", "labelstudio"), (tmp_path / "tasks.jsonl", "doccano")):
        if format == "labelstudio":  # pre-annotations, not annotations: read, and said so
            with pytest.warns(NerDataWarning, match="4 task\\(s\\) without annotations read from their predictions"):
                data = rows(path, format)
        else:
            data = rows(path, format)
        spans = []
        for text, (_, tokens, tags) in zip(texts, data):
            words = split_words(text)
            assert tokens == [w for w, _, _ in words]
            row = []
            for i, tag in enumerate(tags):  # BIO by hand: a B- opens an entity, I- extends it
                if tag.startswith("B-"):
                    row.append([tag[2:], words[i][1], words[i][2]])
                elif tag.startswith("I-"):
                    row[-1][2] = words[i][2]
            spans.append([tuple(span) for span in row])
        assert spans == expected, format
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    first = tasks[0]["predictions"][0]["result"][0]
    assert first["value"]["text"] == TEXT[first["value"]["start"]:first["value"]["end"]] and "score" in first
