"""hf_bert_tasks.files: the shared reading rules (CSV rows, JSON records), directly and through the task readers
that use them, every bad input reported at the line where it starts."""

import csv
import io
import json
import random
from pathlib import Path

import pytest

from hf_bert_tasks.classification.data import ClassificationDataError, read_classification_file
from hf_bert_tasks.files import MAX_FIELD_LINE_ENDS, DataFileError, csv_rows, json_records, read_lines
from hf_bert_tasks.ner.data import NerDataError, detect_format, load_ner_dataset, read_cluener, read_jsonl


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


# ------------------------------------------------------------------------------------------------------------- CSV


def test_csv_rows_agree_with_the_csv_module_and_give_each_rows_first_line():
    rng = random.Random(0)
    fields = ["a", "b c", "x,y", 'say "hi"', "two\nlines", "three\nline\nfield", ""]
    rows = [[rng.choice(fields) for _ in range(3)] for _ in range(200)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    lines = buffer.getvalue().split("\n")[:-1]
    read = list(csv_rows("x.csv", lines))
    assert [row for _, row in read] == rows
    # The first line of row i is one past the line ends of the rows before it.
    expected_first = 1
    for (first, row), original in zip(read, rows):
        assert first == expected_first
        expected_first += 1 + sum(field.count("\n") for field in original)


def test_an_open_quote_that_runs_to_the_end_of_the_file_is_named_where_it_opens(tmp_path):
    # The case of issue 29: the rest of the file became one text, the run trained a one-class model.
    rows = "\n".join(f"{label},text number {i}" for i, label in enumerate(["pos", "neg"] * 10))
    path = write(tmp_path, "open.csv", f'label,text\n{rows}\npos,"an open quote\nneg,never closed\npos,later\n')
    with pytest.raises(ClassificationDataError) as info:
        read_classification_file(path)
    assert str(info.value).startswith(f"{path}:22: a quoted field opens here and is not closed before the end")
    # The same in a field after a multi-line field of the same row: the line is the open quote's.
    path = write(tmp_path, "second.csv", 'label,text,pair\npos,"two\nlines","open\nfield\n')
    with pytest.raises(ClassificationDataError, match=r"second.csv:3: a quoted field opens here"):
        read_classification_file(path, text_pair_column="pair")


def test_a_quoted_field_over_the_bound_of_line_ends_is_refused(tmp_path):
    allowed = "\n".join(["line"] * (MAX_FIELD_LINE_ENDS + 1))  # MAX_FIELD_LINE_ENDS line ends
    path = write(tmp_path, "long.csv", f'label,text\npos,"{allowed}"\nneg,short\n')
    assert read_classification_file(path)["text"] == [allowed, "short"]
    too_long = allowed + "\none more"
    path = write(tmp_path, "too_long.csv", f'label,text\npos,short\npos,"{too_long}",\nneg,short\n')
    with pytest.raises(ClassificationDataError) as info:
        read_classification_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: a quoted field opens here and runs over {MAX_FIELD_LINE_ENDS + 1} line")
    assert f"to line {3 + MAX_FIELD_LINE_ENDS + 1}" in message


def test_malformed_quoting_names_the_line_and_where_the_row_began(tmp_path):
    path = write(tmp_path, "stray.csv", 'label,text\npos,"quoted"then text\n')
    with pytest.raises(ClassificationDataError, match=r"stray.csv:2: malformed CSV: ',' expected after '\"'"):
        read_classification_file(path)
    # An open quote closed by the next quoted field: the error is where the quotes stop pairing, naming the row's start.
    path = write(tmp_path, "shifted.csv", 'label,text\npos,"open\nneg,"quoted",x\n')
    with pytest.raises(ClassificationDataError, match=r"shifted.csv:3: malformed CSV: .* row began at line 2"):
        read_classification_file(path)


# ------------------------------------------------------------------------------------------------------------ JSON


RECORDS = [{"tokens": ["Anna", "met", "Bo"], "ner_tags": ["B-PER", "O", "B-PER"]},
           {"tokens": ["in", "Oslo"], "ner_tags": ["O", "B-LOC"]},
           {"tokens": ["."], "ner_tags": ["O"]}]


def test_a_pretty_printed_json_array_reads_like_json_lines_with_each_records_line(tmp_path):
    lines_file = write(tmp_path / "lines", "data.json", "".join(json.dumps(r) + "\n" for r in RECORDS))
    array_file = write(tmp_path / "array", "data.json", json.dumps(RECORDS, indent=2) + "\n")
    assert detect_format(array_file) == "jsonl"
    assert read_jsonl(array_file).to_dict() == read_jsonl(lines_file).to_dict()
    text = array_file.read_text(encoding="utf-8")
    starts = [n for n, line in enumerate(text.split("\n"), 1) if line.strip() == "{"]
    assert [line for line, _ in json_records(array_file, read_lines(array_file))] == starts
    # Compact, on one line, with blank lines and spaces around it: the same records.
    compact = write(tmp_path, "compact.json", "\n  " + json.dumps(RECORDS) + "  \n\n")
    assert [record for _, record in json_records(compact, read_lines(compact))] == RECORDS
    assert list(json_records(compact, ["[ ]"])) == []
    # Through the loader of splits, and CLUENER records as an array too.
    dataset = load_ner_dataset(train_file=array_file, validation_file=lines_file)
    assert dataset["train"]["tokens"] == dataset["validation"]["tokens"]
    records = [{"text": "王伟好", "label": {"name": {"王伟": [[0, 1]]}}}]
    cluener = write(tmp_path, "cluener.json", json.dumps(records, indent=1, ensure_ascii=False))
    assert read_cluener(cluener)["tokens"] == [["王", "伟", "好"]]


def test_classification_reads_a_json_array_too(tmp_path):
    records = [{"text": "the team won", "label": "sports"}, {"text": "the bank said", "label": "business"}]
    path = write(tmp_path, "array.json", json.dumps(records, indent=4))
    dataset = read_classification_file(path)
    assert dataset["text"] == ["the team won", "the bank said"] and dataset["line"] == [2, 6]


@pytest.mark.parametrize("content, line, words", [
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]},\n {"tokens": ["b"], \n]\n', 4, "invalid JSON in the array"),
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]}\n {"tokens": ["b"]}\n]\n', 3, "expected ',' or ']'"),
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]},\n "b"\n]\n', 3, "expected a JSON object, found string"),
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]}\n]\n[]\n', 4, "text after the end of the JSON array"),
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]},\n', 2, "the JSON array is not closed before the end of the file"),
    ('[\n {"tokens": ["a"], "ner_tags": ["O"]}\n\n', 3, "the JSON array is not closed before the end of the file"),
    ('[\n {"tokens": ["a"]}\n]\n', 2, "missing key 'ner_tags'"),
])
def test_bad_json_arrays_name_the_line(tmp_path, content, line, words):
    path = write(tmp_path, "bad.json", content)
    with pytest.raises(NerDataError) as info:
        read_jsonl(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and words in str(info.value), str(info.value)


def test_one_pretty_printed_object_is_named_as_what_it_is(tmp_path):
    path = write(tmp_path, "object.json", json.dumps(RECORDS[0], indent=2))
    with pytest.raises(NerDataError, match=r"object.json:1: invalid JSON: .*expected JSON lines \(one object a "
                                           r"line\), found one JSON object over 12 lines"):
        read_jsonl(path)


def test_json_records_errors_are_the_readers_class():
    with pytest.raises(DataFileError, match=r"x.json:1: invalid JSON in the array"):
        list(json_records("x.json", ["[nope]"]))
