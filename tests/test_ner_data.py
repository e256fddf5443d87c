"""hf_bert_tasks.ner.data: readers on small fixtures, every bad input with its line, labels, detection, sample data,
and the recipes' encoding into windows (`encode_dataset`).

The real data sets are read only by the test marked `data` (skipped when ../shared/data is absent).
"""

import collections
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from conftest import shared_data_path
from hf_bert_tasks.ner import data
from hf_bert_tasks.ner.data import (
    NerDataError,
    NerDataWarning,
    canonical_labels,
    detect_format,
    load_ner_dataset,
    read_char_bio,
    read_cluener,
    read_conll,
    read_jsonl,
    sample_data_path,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"

CONLL_LABELS = ["O", "B-LOC", "B-ORG", "B-PER", "I-ORG", "I-PER"]
CONLL_TOKENS = [
    ["Maria", "Lindqvist", "visited", "Oslo", "."],
    ["She", "left", "."],
    ["Harbor", "Steel", "hired", "Tomas", "."],
]
CONLL_TAGS = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "O", "O"], ["B-ORG", "I-ORG", "O", "B-PER", "O"]]


def tags_of(dataset: Dataset) -> list[list[str]]:
    names = dataset.features["ner_tags"].feature.names
    return [[names[i] for i in sentence] for sentence in dataset["ner_tags"]]


def label_names(dataset: Dataset) -> list[str]:
    return dataset.features["ner_tags"].feature.names


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="\n")
    return path


def no_warnings(read, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NerDataWarning)
        return read(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Readers on good files


def test_conll_docstart_before_documents():
    dataset = no_warnings(read_conll, FIXTURES / "conll_docstart_before.conll")
    assert dataset.column_names == ["id", "document_id", "tokens", "ner_tags"]
    assert dataset.features["ner_tags"].feature == ClassLabel(names=CONLL_LABELS)
    assert dataset["id"] == ["0", "1", "2"]
    assert dataset["document_id"] == ["conll_docstart_before-0", "conll_docstart_before-0", "conll_docstart_before-1"]
    assert dataset["tokens"] == CONLL_TOKENS
    assert tags_of(dataset) == CONLL_TAGS


def test_conll_docstart_after_documents_reads_the_same():
    # The shared CoNLL-2003 copy puts -DOCSTART- after each document and ends without a newline.
    before = read_conll(FIXTURES / "conll_docstart_before.conll")
    after = no_warnings(read_conll, FIXTURES / "conll_docstart_after.conll")
    assert after["tokens"] == before["tokens"]
    assert tags_of(after) == tags_of(before)
    assert after["document_id"] == ["conll_docstart_after-0", "conll_docstart_after-0", "conll_docstart_after-1"]


def test_conll_docstart_before_and_after_counts_no_empty_documents(tmp_path):
    text = "-DOCSTART- O\n\nA B-PER\n\n-DOCSTART- O\n\n-DOCSTART- O\n\nB O\n\n-DOCSTART- O\n"
    dataset = read_conll(write(tmp_path, "both.conll", text))
    assert dataset["document_id"] == ["both-0", "both-1"]


def test_conll_without_docstart_is_one_document_and_warns_only_for_document_context():
    # Documents matter only as context (--context_window): without it the file is read in silence.
    dataset = no_warnings(read_conll, FIXTURES / "conll_no_docstart.conll")
    assert dataset["tokens"] == [["Kestrel", "Software", "moved", "to", "Porto"], ["It", "grew"]]
    assert tags_of(dataset) == [["B-ORG", "I-ORG", "O", "O", "B-LOC"], ["O", "O"]]
    assert dataset["document_id"] == ["conll_no_docstart-0"] * 2
    no_warnings(load_ner_dataset, FIXTURES / "conll_no_docstart.conll", source_scheme="BIO", target_scheme="BIO")
    with pytest.warns(NerDataWarning, match="one document"):
        read_conll(FIXTURES / "conll_no_docstart.conll", document_context=True)
    with pytest.warns(NerDataWarning, match="conll_no_docstart.conll: no -DOCSTART- lines"):
        load_ner_dataset(FIXTURES / "conll_no_docstart.conll", document_context=True)


def test_conll_tag_column_and_separator(tmp_path):
    # Column 3 of the 4-column fixture is the chunk tag; here read a tab-separated file whose token has a space.
    dataset = read_conll(FIXTURES / "conll_docstart_before.conll", tag_column=2)
    assert label_names(dataset) == ["O", "B-NP", "B-VP", "I-NP"]
    path = write(tmp_path, "tabs.tsv", "-DOCSTART-\tO\n\nNew York\tB-LOC\tx\nis\tO\tx\n")
    dataset = read_conll(path, tag_column=1, separator="\t")
    assert dataset["tokens"] == [["New York", "is"]]
    assert tags_of(dataset) == [["B-LOC", "O"]]
    assert dataset["document_id"] == ["tabs-0"]


def test_load_passes_the_column_separator(tmp_path):
    path = write(tmp_path, "tabs.tsv", "New York\tB-LOC\nis\tO\n")
    with pytest.raises(NerDataError, match="found 2 columns, but line 1 has 3"):
        load_ner_dataset(train_file=path)
    dataset = load_ner_dataset(train_file=path, separator="\t")["train"]
    assert dataset["tokens"] == [["New York", "is"]]


@pytest.mark.parametrize("space", ["\u2028", "\u00a0", "\u3000", "\u0085"])
def test_conll_columns_split_at_spaces_and_tabs_only(tmp_path, space):
    # str.split() would break "Smith" at a Unicode space and blame the next, clean line for the column count.
    path = write(tmp_path, "u.conll", f"John B-PER\nSm{space}ith I-PER\nvisited\tO\n")
    dataset = read_conll(path)
    assert dataset["tokens"] == [["John", f"Sm{space}ith", "visited"]]
    assert tags_of(dataset) == [["B-PER", "I-PER", "O"]]
    # When such a token does break a file, the error names the token's own line.
    path = write(tmp_path, "first.conll", f"Sm{space}ith B-PER X\nvisited O X\nParis B-LOC\n")
    with pytest.raises(NerDataError) as info:
        read_conll(path)
    assert info.value.line == 3 and "found 2 columns, but line 1 has 3" in str(info.value)


def test_document_ids_keep_non_data_suffixes(tmp_path):
    # eng.train / eng.testa must not both become "eng".
    path = write(tmp_path, "eng.train", "-DOCSTART- O\n\nA O\n")
    assert read_conll(path)["document_id"] == ["eng.train-0"]


def test_char_bio_tab_separated():
    dataset = read_char_bio(FIXTURES / "char_bio.txt")
    assert dataset["tokens"] == [list("王伟在北京。"), list("星河成立")]
    assert tags_of(dataset) == [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], ["B-ORG", "I-ORG", "O", "O"]]
    assert label_names(dataset) == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    assert dataset["document_id"] == ["char_bio", "char_bio"]
    assert dataset["id"] == ["0", "1"]


def test_char_bmes_space_separated():
    dataset = read_char_bio(FIXTURES / "char_bmes.bmes")
    assert dataset["tokens"] == [list("张三任经理"), ["李"]]
    assert tags_of(dataset) == [["B-NAME", "E-NAME", "O", "B-TITLE", "E-TITLE"], ["S-NAME"]]
    assert label_names(dataset) == ["O", "B-NAME", "B-TITLE", "E-NAME", "E-TITLE", "S-NAME"]


def test_cluener():
    dataset = read_cluener(FIXTURES / "cluener.json")
    assert dataset["tokens"] == [list("王伟在星河科技公司工作"), list("北京和上海"), list("今天天气好")]
    assert tags_of(dataset) == [
        ["B-name", "I-name", "O", "B-company"] + ["I-company"] * 5 + ["O", "O"],
        ["B-address", "I-address", "O", "B-address", "I-address"],
        ["O"] * 5,  # no "label": the unlabelled test-set layout
    ]
    assert label_names(dataset) == ["O", "B-address", "B-company", "B-name", "I-address", "I-company", "I-name"]
    assert dataset["document_id"] == ["cluener-0", "cluener-1", "cluener-2"]


def test_jsonl():
    dataset = read_jsonl(FIXTURES / "tokens.jsonl")
    assert dataset["tokens"] == [["Anna", "Keller", "visited", "Porto"], ["Thanks", "!"]]
    assert tags_of(dataset) == [["B-PER", "I-PER", "O", "B-LOC"], ["O", "O"]]
    assert dataset["document_id"] == ["news-1", "tokens"]
    assert dataset["id"] == ["0", "1"]


def test_reader_with_given_labels_keeps_their_order():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    dataset = read_conll(FIXTURES / "conll_docstart_before.conll", labels=labels)
    assert label_names(dataset) == labels
    assert tags_of(dataset) == CONLL_TAGS


def test_reader_rejects_a_tag_outside_given_labels():
    with pytest.raises(NerDataError) as info:
        read_conll(FIXTURES / "conll_docstart_before.conll", labels=["O", "B-PER", "I-PER"])
    message = str(info.value)
    assert message.startswith(f"{FIXTURES / 'conll_docstart_before.conll'}:6: ")
    assert "'B-LOC'" in message and "O, B-PER, I-PER" in message


def test_features_are_the_documented_ones():
    dataset = read_jsonl(FIXTURES / "tokens.jsonl")
    assert dataset.features == Features(
        {
            "id": Value("string"),
            "document_id": Value("string"),
            "tokens": Sequence(Value("string")),
            "ner_tags": Sequence(ClassLabel(names=["O", "B-LOC", "B-PER", "I-PER"])),
        }
    )


def test_canonical_labels():
    assert canonical_labels(["I-PER", "B-PER", "O", "B-LOC", "B-PER"]) == ["O", "B-LOC", "B-PER", "I-PER"]
    assert canonical_labels(["B-PER"]) == ["O", "B-PER"]


# ---------------------------------------------------------------------------------------------------------------
# Bad input: NerDataError "<path>:<line>: ..."

BAD_INPUTS = [
    # (reader, file name, content, line, words in the message)
    (read_conll, "one_column.conll", "-DOCSTART- O\n\nA B-PER\nB\n", 4, "missing tag column"),
    (read_conll, "bad_tag.conll", "A O\nB PERSON\n", 2, "invalid tag 'PERSON'"),
    (read_conll, "bad_prefix.conll", "\nA Z-PER\n", 2, "invalid tag 'Z-PER'"),
    (read_conll, "no_type.conll", "A O\nB B-\n", 2, "invalid tag 'B-'"),
    (read_conll, "short_line.conll", "A NNP I-NP B-PER\nB NNP I-NP O\n\nC NNP B-PER\n", 4, "found 3 columns"),
    (read_conll, "docstart_only.conll", "\n-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n", 2, "only -DOCSTART-"),
    (read_conll, "bad_utf8.conll", b"A O\n\xff\xfe O\n", 2, "not valid UTF-8"),
    (read_conll, "docstart_inside.conll", "-DOCSTART- O\n\nAnna B-PER\n-DOCSTART- O\nWeber I-PER\n", 4,
     "-DOCSTART- inside a sentence: line 3 is a token line"),
    (read_conll, "docstart_ends.conll", "Anna B-PER\n-DOCSTART- O\n\nBo B-PER\n", 2, "-DOCSTART- inside a sentence"),
    (read_char_bio, "three_columns.txt", "王\tB-PER\n伟\tI-PER\tx\n", 2, "found 3"),
    (read_char_bio, "one_column.txt", "王\tB-PER\n\n伟\n", 3, "found 1"),
    (read_char_bio, "word.txt", "王\tB-PER\n北京\tB-LOC\n", 2, "one character"),
    (read_char_bio, "bad_tag.txt", "王\tPER\n", 1, "invalid tag 'PER'"),
    (read_jsonl, "bad_json.jsonl", '{"tokens": ["a"], "ner_tags": ["O"]}\n\n{"tokens": [\n', 3, "invalid JSON"),
    (read_jsonl, "no_tags.jsonl", '{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["a"]}\n', 2,
     "missing key 'ner_tags'"),
    (read_jsonl, "no_tokens.jsonl", '{"ner_tags": ["O"]}\n', 1, "missing key 'tokens'"),
    (read_jsonl, "lengths.jsonl", '{"tokens": ["a", "b"], "ner_tags": ["O"]}\n', 1, "2 tokens but 1 ner_tags"),
    (read_jsonl, "int_tags.jsonl", '{"tokens": ["a"], "ner_tags": [0]}\n', 1, "tag strings"),
    (read_jsonl, "bad_tag.jsonl", '{"tokens": ["a"], "ner_tags": ["per"]}\n', 1, "invalid tag 'per'"),
    (read_jsonl, "list.jsonl", '["a", "O"]\n', 1, "expected a JSON object"),
    (read_cluener, "mismatch.json", '{"text": "ab"}\n{"text": "王伟好", "label": {"name": {"王伟": [[1, 2]]}}}\n', 2,
     "not the mention '王伟'"),
    (read_cluener, "overlap.json",
     '{"text": "星河公司王伟", "label": {"company": {"星河公司": [[0, 3]]}, "name": {"公司王伟": [[2, 5]]}}}\n', 1,
     "overlapping spans"),
    (read_cluener, "outside.json", '{"text": "王伟", "label": {"name": {"王伟": [[0, 2]]}}}\n', 1, "outside the text"),
    (read_cluener, "no_text.json", '{"text": "a"}\n{"label": {}}\n', 2, "missing key 'text'"),
    (read_cluener, "bad_json.json", '{"text": "a"}\n{"text": \n', 2, "invalid JSON"),
    (read_cluener, "bad_span.json", '{"text": "王伟", "label": {"name": {"王伟": [0, 1]}}}\n', 1, "[start, end] pair"),
]


@pytest.mark.parametrize("read, name, content, line, words", BAD_INPUTS, ids=[case[1] for case in BAD_INPUTS])
def test_bad_input_names_file_and_line(tmp_path, read, name, content, line, words):
    path = write(tmp_path, name, content)
    with pytest.raises(NerDataError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message
    assert info.value.path == str(path) and info.value.line == line
    assert message == f"{path}:{line}: {info.value.message}"  # the fields rebuild the text: nothing is only in one


@pytest.mark.parametrize("read", [read_conll, read_char_bio, read_jsonl, read_cluener])
@pytest.mark.parametrize("content", ["", "\n \n\t\r\n"], ids=["empty", "blank-lines"])
def test_empty_file_has_no_sentences(tmp_path, read, content):
    path = write(tmp_path, "empty.txt", content)
    with pytest.raises(NerDataError) as info:
        read(path)
    assert str(info.value) == f"{path}: no sentences found"


def test_bad_tag_column(tmp_path):
    path = write(tmp_path, "cols.conll", "A NNP B-PER\n")
    with pytest.raises(NerDataError, match=r"cols\.conll:1: tag_column=3"):
        read_conll(path, tag_column=3)
    with pytest.raises(NerDataError, match="tag_column=-3"):
        read_conll(path, tag_column=-3)  # the token column


def test_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(NerDataError("a.conll", 3, "bad")))
    assert (str(error), error.path, error.line) == ("a.conll:3: bad", "a.conll", 3)


# ---------------------------------------------------------------------------------------------------------------
# Encodings and line endings


@pytest.mark.parametrize(
    "read, name",
    [
        (read_conll, "conll_docstart_before.conll"),
        (read_conll, "conll_docstart_after.conll"),
        (read_char_bio, "char_bio.txt"),
        (read_char_bio, "char_bmes.bmes"),
        (read_cluener, "cluener.json"),
        (read_jsonl, "tokens.jsonl"),
    ],
)
def test_crlf_and_bom_read_like_the_original(tmp_path, read, name):
    original = (FIXTURES / name).read_bytes()
    expected = read(FIXTURES / name)
    path = write(tmp_path, name, b"\xef\xbb\xbf" + original.replace(b"\n", b"\r\n"))
    got = read(path)
    assert got["tokens"] == expected["tokens"]
    assert tags_of(got) == tags_of(expected)
    assert label_names(got) == label_names(expected)


def test_whitespace_only_lines_are_blank(tmp_path):
    path = write(tmp_path, "ws.conll", "-DOCSTART- O\n \nA B-PER\n \t \nB O\n")
    assert read_conll(path)["tokens"] == [["A"], ["B"]]
    path = write(tmp_path, "ws.txt", "王\tB-PER\n   \n伟\tO\n")
    assert read_char_bio(path)["tokens"] == [["王"], ["伟"]]


def test_bad_utf8_line_counts_after_bom_and_crlf(tmp_path):
    path = write(tmp_path, "bad.txt", b"\xef\xbb\xbf\xe7\x8e\x8b\tO\r\n\r\n\xe4\xbc\tO\r\n")
    with pytest.raises(NerDataError, match=r"bad\.txt:3: not valid UTF-8"):
        read_char_bio(path)


# ---------------------------------------------------------------------------------------------------------------
# Format detection


@pytest.mark.parametrize(
    "name, expected",
    [
        ("conll_docstart_before.conll", "conll"),
        ("conll_docstart_after.conll", "conll"),
        ("conll_no_docstart.conll", "conll"),
        ("char_bio.txt", "char"),
        ("char_bmes.bmes", "char"),
        ("cluener.json", "cluener"),
        ("tokens.jsonl", "jsonl"),
    ],
)
def test_detect_format(name, expected):
    assert detect_format(FIXTURES / name) == expected


def test_detect_format_by_content(tmp_path):
    assert detect_format(write(tmp_path, "x.txt", '{"tokens": ["a"], "ner_tags": ["O"]}\n')) == "jsonl"
    assert detect_format(write(tmp_path, "y.txt", '\n{"text": "今天"}\n')) == "cluener"  # test-set layout
    assert detect_format(write(tmp_path, "z.data", "a O\nI O\nrun O\n")) == "conll"  # one word is longer
    assert detect_format(write(tmp_path, "w.data", "a O\nI O\n")) == "char"
    with pytest.raises(NerDataError, match=r"bad\.json:1: invalid JSON"):
        detect_format(write(tmp_path, "bad.json", "{nope\n"))


def test_load_detects_each_file():
    dataset = load_ner_dataset(
        train_file=FIXTURES / "tokens.jsonl",
        validation_file=FIXTURES / "conll_docstart_before.conll",
        labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],
    )
    assert dataset["train"]["tokens"][0] == ["Anna", "Keller", "visited", "Porto"]
    assert dataset["validation"]["tokens"] == CONLL_TOKENS


def test_load_with_an_explicit_format(tmp_path):
    # One-letter English tokens without -DOCSTART- look like a char file; format= overrides the guess.
    path = write(tmp_path, "letters.conll", "A B-PER\nI O\n")
    assert detect_format(path) == "char"
    assert load_ner_dataset(train_file=path, format="conll")["train"]["document_id"] == ["letters-0"]
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        load_ner_dataset(train_file=path, format="xml")


# ---------------------------------------------------------------------------------------------------------------
# Splits and labels


def test_splits_share_the_training_labels():
    dataset = load_ner_dataset(
        train_file=FIXTURES / "conll_docstart_before.conll",
        validation_file=FIXTURES / "conll_docstart_after.conll",
        test_file=FIXTURES / "conll_docstart_after.conll",
    )
    assert isinstance(dataset, DatasetDict)
    assert list(dataset) == ["train", "validation", "test"]
    for split in dataset.values():
        # Every B/I tag of the training types, I-LOC included although no place has two words.
        assert split.features["ner_tags"].feature == ClassLabel(names=canonical_labels([*CONLL_LABELS, "I-LOC"]))
        assert tags_of(split) == CONLL_TAGS


def test_entity_types_come_from_training_file_only(tmp_path):
    # LOC appears only in the dev file: a type the model never sees is an error, not a new label.
    train = write(tmp_path, "train.conll", "-DOCSTART- O\n\nA B-PER\nB I-PER\n")
    dev = write(tmp_path, "dev.conll", "-DOCSTART- O\n\nA B-PER\nB O\nC B-LOC\n")
    with pytest.raises(NerDataError) as info:
        load_ner_dataset(train_file=train, validation_file=dev)
    message = str(info.value)
    assert message.startswith(f"{dev}:5: entity type 'LOC' (tag 'B-LOC') does not occur in the training data")
    assert f"({train}), whose types are PER" in message


def test_unseen_validation_type_fixture():
    with pytest.raises(ValueError) as info:
        load_ner_dataset(
            train_file=FIXTURES / "conll_docstart_before.conll",
            test_file=FIXTURES / "conll_dev_unseen_tag.conll",
        )
    message = str(info.value)
    assert message.startswith(f"{FIXTURES / 'conll_dev_unseen_tag.conll'}:9: entity type 'MISC' (tag 'B-MISC')")
    assert "whose types are LOC, ORG, PER" in message


@pytest.mark.parametrize("scheme, train, dev, missing", [
    # BIOES: every training person has two words (B E), a dev person three (B I E).
    ("BIOES", "A B-PER\nB E-PER\nC O\n\nD B-PER\nE E-PER\n", "A B-PER\nB I-PER\nC E-PER\n", "I-PER"),
    # BIO: one-word places in training, "New York" in dev.
    ("BIO", "A B-LOC\nB O\n", "New B-LOC\nYork I-LOC\n", "I-LOC"),
])
def test_a_tag_absent_from_training_is_no_error(tmp_path, scheme, train, dev, missing):
    train = write(tmp_path, "train.conll", "-DOCSTART- O\n\n" + train)
    dev = write(tmp_path, "dev.conll", "-DOCSTART- O\n\n" + dev)
    dataset = load_ner_dataset(train_file=train, validation_file=dev, source_scheme=scheme, target_scheme=scheme)
    names = label_names(dataset["validation"])
    entity_type = missing[2:]
    prefixes = {"BIO": "BI", "BIOES": "BIES"}[scheme]
    assert names == canonical_labels(["O", *(f"{p}-{entity_type}" for p in prefixes)])
    assert missing in tags_of(dataset["validation"])[0]
    # Without a scheme, the prefixes found in the files stand in for it.
    names = label_names(load_ner_dataset(train_file=train, validation_file=dev)["validation"])
    assert missing in names


def test_given_labels_cover_unseen_tags():
    labels = [*CONLL_LABELS, "B-MISC", "I-MISC"]
    dataset = load_ner_dataset(
        train_file=FIXTURES / "conll_docstart_before.conll",
        validation_file=FIXTURES / "conll_dev_unseen_tag.conll",
        labels=labels,
    )
    assert label_names(dataset["train"]) == label_names(dataset["validation"]) == labels
    assert tags_of(dataset["validation"])[1] == ["O", "B-MISC", "O"]


def test_without_training_file_labels_are_the_union_of_the_files():
    dataset = load_ner_dataset(
        validation_file=FIXTURES / "conll_dev_unseen_tag.conll", test_file=FIXTURES / "conll_docstart_before.conll"
    )
    assert list(dataset) == ["validation", "test"]
    assert label_names(dataset["test"]) == [
        "O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"
    ]


def test_load_argument_errors():
    with pytest.raises(ValueError, match="give train_file"):
        load_ner_dataset()
    with pytest.raises(ValueError, match="not both"):
        load_ner_dataset(train_file=FIXTURES / "tokens.jsonl", dataset_name="conll2003")
    with pytest.raises(ValueError, match="both source_scheme and target_scheme"):
        load_ner_dataset(train_file=FIXTURES / "tokens.jsonl", source_scheme="IOB1")
    with pytest.raises(ValueError, match="duplicates: O"):
        load_ner_dataset(train_file=FIXTURES / "tokens.jsonl", labels=["O", "B-PER", "O"])
    with pytest.raises(ValueError, match="repair_tags needs source_scheme"):
        load_ner_dataset(train_file=FIXTURES / "tokens.jsonl", repair_tags=True)


def hub_dataset() -> DatasetDict:
    names = ["O", "I-PER", "B-PER", "I-LOC"]  # IOB1, in the Hub's own (non-canonical) order
    features = Features(
        {
            "id": Value("string"),
            "tokens": Sequence(Value("string")),
            "pos_tags": Sequence(Value("int32")),
            "ner_tags": Sequence(ClassLabel(names=names)),
        }
    )
    rows = {"id": ["7", "8"], "tokens": [["Anna", "Omar", "Jonas"], ["in", "Lima"]], "pos_tags": [[1, 1, 1], [2, 1]],
            "ner_tags": [[1, 1, 2], [0, 3]]}
    return DatasetDict({"train": Dataset.from_dict(rows, features=features),
                        "test": Dataset.from_dict(rows, features=features)})


def test_hub_dataset_is_a_thin_wrapper(monkeypatch):
    calls = []
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args: calls.append(args) or hub_dataset())
    dataset = load_ner_dataset(dataset_name="someone/ner", dataset_config="en")
    assert calls == [("someone/ner", "en")]
    assert list(dataset) == ["train", "test"]
    train = dataset["train"]
    assert train.column_names == ["id", "document_id", "tokens", "ner_tags"]
    assert label_names(train) == ["O", "I-PER", "B-PER", "I-LOC"]  # the Hub's order is kept
    assert train["id"] == ["7", "8"] and train["document_id"] == ["train", "train"]
    assert tags_of(train) == [["I-PER", "I-PER", "B-PER"], ["O", "I-LOC"]]


def test_hub_dataset_needs_tokens_and_classlabel_tags(monkeypatch):
    bad = DatasetDict({"train": Dataset.from_dict({"tokens": [["a"]], "tags": [["O"]]})})
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args: bad)
    with pytest.raises(ValueError, match="missing column"):
        load_ner_dataset(dataset_name="someone/ner")


# ---------------------------------------------------------------------------------------------------------------
# Sample data shipped with the package


def test_sample_data_sizes_and_labels():
    english = load_ner_dataset(sample_data_path("en_train.conll"), sample_data_path("en_dev.conll"))
    assert (len(english["train"]), len(english["validation"])) == (400, 100)
    assert (len(set(english["train"]["document_id"])), len(set(english["validation"]["document_id"]))) == (72, 17)
    assert label_names(english["train"]) == [
        "O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"
    ]
    chinese = load_ner_dataset(sample_data_path("zh_train.txt"), sample_data_path("zh_dev.txt"))
    assert (len(chinese["train"]), len(chinese["validation"])) == (300, 80)
    assert label_names(chinese["validation"]) == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    # Every type occurs in every split, often enough to learn.
    for dataset, types in ((english, "PER LOC ORG MISC"), (chinese, "PER LOC ORG")):
        for split in dataset.values():
            counts = collections.Counter(tag[2:] for sentence in tags_of(split) for tag in sentence if tag[0] == "B")
            assert all(counts[t] >= 20 for t in types.split()), counts
    for name in ("en_train.conll", "en_dev.conll", "zh_train.txt", "zh_dev.txt", "README.md"):
        assert (SAMPLE / name).stat().st_size < 100_000


def test_sample_dynasty_sentence():
    dataset = read_char_bio(sample_data_path("zh_train.txt"))
    sentences = {"".join(tokens): tags for tokens, tags in zip(dataset["tokens"], tags_of(dataset))}
    tags = sentences["明朝建立于1368年，开国皇帝是朱元璋。"]
    assert tags[-4:] == ["B-PER", "I-PER", "I-PER", "O"]
    assert set(tags[:-4]) == {"O"}  # 明朝 is a dynasty: O, see sample_data/README.md


def test_sample_data_matches_its_generator(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_data.py"), "--output-dir", str(tmp_path)],
        check=True, capture_output=True,
    )
    for name in ("en_train.conll", "en_dev.conll", "zh_train.txt", "zh_dev.txt"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_sample_data_path_lists_files_when_missing():
    with pytest.raises(FileNotFoundError, match="en_train.conll"):
        sample_data_path("nope.conll")


# ---------------------------------------------------------------------------------------------------------------
# Tag-scheme conversion (hf_bert_tasks.modeling.tagging.convert_tags), kept last


INVALID_BIO = (
    "-DOCSTART- O\n\n"
    "A B-PER\nB O\n\n"  # lines 3-4: valid
    "C O\nD I-LOC\nE O\n\n"  # line 7: I-LOC after O
    "F B-ORG\nG I-ORG\nH I-PER\n\n"  # line 12: an I- of one type right after an I- of another
    "I O\nJ O\nK I-PER\nL I-PER\nM O\nN I-LOC\n"  # lines 16 and 19, one sentence
)


def test_invalid_sequences_are_reported_at_their_own_lines_and_counted(tmp_path):
    path = write(tmp_path, "train.conll", INVALID_BIO)
    with pytest.raises(NerDataError) as info:
        load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO")
    message = str(info.value)
    assert info.value.line == 7
    assert message.startswith(f"{path}:7: 3 of 4 sentences are not valid BIO: line 7: I-LOC follows O; ")
    assert "line 12: I-PER follows I-ORG" in message and "line 16: I-PER follows O" in message
    assert "line 19" not in message  # one problem per sentence: the first
    assert "position" not in message and "from BIO to BIO" not in message
    assert "--repair_tags" in message
    # Converting, the message says which scheme the file was read in.
    with pytest.raises(NerDataError, match=r"train.conll:7: 3 of 4 sentences are not valid BIO \(the source scheme; "
                                           r"converting to BIOES\)"):
        load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIOES")


def test_many_invalid_sentences_show_the_first_few(tmp_path):
    path = write(tmp_path, "many.conll", "".join(f"w{i} I-PER\n\n" for i in range(12)))
    with pytest.raises(NerDataError) as info:
        load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO")
    message = str(info.value)
    assert message.startswith(f"{path}:1: 12 of 12 sentences are not valid BIO")
    assert "line 9:" in message and "line 11:" not in message and "(7 more)" in message


def test_repair_tags_counts_what_it_changed(tmp_path):
    train = write(tmp_path, "train.conll", INVALID_BIO)
    test = write(tmp_path, "test.conll", "A B-PER\nB O\n\nC I-PER\n")
    with pytest.warns(NerDataWarning) as record:
        dataset = load_ner_dataset(train_file=train, test_file=test, source_scheme="BIO", target_scheme="BIOES",
                                   repair_tags=True)
    messages = [str(w.message) for w in record]
    assert any(m.startswith(f"{train}: repaired 4 tag(s) in 3 of 4 sentences") and "lines 7, 12, 16, 19" in m
               for m in messages), messages
    assert any(m.startswith(f"{test}: repaired 1 tag(s) in 1 of 2 sentences") for m in messages), messages
    assert tags_of(dataset["train"])[1:] == [
        ["O", "S-LOC", "O"], ["B-ORG", "E-ORG", "S-PER"], ["O", "O", "B-PER", "E-PER", "O", "S-LOC"]]
    assert dataset["train"]["repaired_tags"] == [0, 1, 1, 2]
    assert data.repair_counts(dataset) == {"train_repaired_tags": 4, "train_repaired_sentences": 3,
                                           "test_repaired_tags": 1, "test_repaired_sentences": 1}
    # Without repair there is no such column, and nothing to count.
    clean = load_ner_dataset(train_file=FIXTURES / "conll_docstart_before.conll")
    assert "repaired_tags" not in clean["train"].column_names and data.repair_counts(clean) == {}


def test_repair_never_splits_a_sentence_at_a_docstart_line(tmp_path):
    # Once split there, the second half started with I-PER: the error blamed that tag, and repair split silently.
    path = write(tmp_path, "docstart.conll", "-DOCSTART- O\n\nAnna B-PER\n-DOCSTART- O\nWeber I-PER\nleft O\n")
    for repair in (False, True):
        with pytest.raises(NerDataError) as info:
            load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO", repair_tags=repair)
        assert str(info.value).startswith(f"{path}:4: -DOCSTART- inside a sentence"), str(info.value)


def test_repair_never_guesses_tags_outside_the_scheme(tmp_path):
    path = write(tmp_path, "bioes.conll", "A B-PER\nB I-PER\n\nC E-PER\n")
    with pytest.raises(NerDataError) as info:
        load_ner_dataset(train_file=path, source_scheme="BIO", target_scheme="BIO", repair_tags=True)
    assert str(info.value).startswith(f"{path}:4: 1 of 2 sentences are not valid BIO: line 4: E-PER is not a BIO tag")
    assert "--source_scheme" in str(info.value)


def test_iob1_to_bio_recomputes_labels():
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    raw = load_ner_dataset(train_file=FIXTURES / "conll_iob1.conll")
    assert label_names(raw["train"]) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]  # the files' prefixes, all types
    dataset = load_ner_dataset(
        train_file=FIXTURES / "conll_iob1.conll",
        validation_file=FIXTURES / "conll_iob1.conll",
        source_scheme="IOB1",
        target_scheme="BIO",
    )
    for split in dataset.values():
        assert label_names(split) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]  # every BIO tag of the types
        assert tags_of(split) == [["B-PER", "I-PER", "O", "B-PER", "I-PER", "B-PER", "O", "B-LOC", "O"]]


def test_invalid_sequence_for_the_source_scheme(tmp_path):
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    path = write(tmp_path, "bioes.conll", "-DOCSTART- O\n\nA O\n\nB S-PER\nC O\n")
    with pytest.raises(NerDataError, match=r"bioes\.conll:5: 1 of 2 sentences are not valid IOB1 \(the source"):
        load_ner_dataset(train_file=path, source_scheme="IOB1", target_scheme="BIO")


def test_unknown_scheme_is_not_blamed_on_the_file():
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    with pytest.raises(ValueError, match="BILOU") as info:
        load_ner_dataset(train_file=FIXTURES / "conll_iob1.conll", source_scheme="IOB1", target_scheme="BILOU")
    assert not isinstance(info.value, NerDataError)


def test_cluener_other_schemes():
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    dataset = read_cluener(FIXTURES / "cluener.json", scheme="BIOES")
    assert tags_of(dataset)[1] == ["B-address", "E-address", "O", "B-address", "E-address"]
    dataset = read_cluener(FIXTURES / "cluener.json", scheme="BMES")
    assert tags_of(dataset)[0][:5] == ["B-name", "E-name", "O", "B-company", "M-company"]


def test_hub_dataset_conversion(monkeypatch):
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args: hub_dataset())
    dataset = load_ner_dataset(dataset_name="someone/ner", source_scheme="IOB1", target_scheme="BIO")
    assert label_names(dataset["test"]) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    assert tags_of(dataset["test"]) == [["B-PER", "I-PER", "B-PER"], ["O", "B-LOC"]]


# ---------------------------------------------------------------------------------------------------------------
# The real data sets (../shared/data), read in place


@pytest.mark.data
def test_real_conll2003_counts():
    folder = shared_data_path("conll2003")
    expected = {"eng.train": (14_041, 203_621, 946), "eng.testa": (3_250, 51_362, 216),
                "eng.testb": (3_453, 46_435, 231)}
    for name, counts in expected.items():
        dataset = no_warnings(read_conll, folder / name)
        assert (len(dataset), sum(map(len, dataset["tokens"])), len(set(dataset["document_id"]))) == counts, name
        assert all(len(tokens) == len(tags) for tokens, tags in zip(dataset["tokens"], dataset["ner_tags"]))


@pytest.mark.data
def test_real_conll2003_entities_after_iob1_to_bio():
    folder = shared_data_path("conll2003")
    pytest.importorskip("hf_bert_tasks.modeling.tagging")
    dataset = load_ner_dataset(folder / "eng.train", folder / "eng.testa", folder / "eng.testb",
                               source_scheme="IOB1", target_scheme="BIO")
    expected = {"train": {"PER": 6_600, "LOC": 7_140, "ORG": 6_321, "MISC": 3_438},
                "validation": {"PER": 1_842, "LOC": 1_837, "ORG": 1_341, "MISC": 922},
                "test": {"PER": 1_617, "LOC": 1_668, "ORG": 1_661, "MISC": 702}}
    for split, counts in expected.items():
        got = collections.Counter(tag[2:] for sentence in tags_of(dataset[split]) for tag in sentence if tag[0] == "B")
        assert dict(got) == counts, split


@pytest.mark.data
def test_real_chinese_sets_read():
    msra = read_char_bio(shared_data_path("msra_ner", "msra_test_bio"))
    assert len(msra) == 3_442 and sum(map(len, msra["tokens"])) == 172_601
    assert label_names(msra) == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    resume = load_ner_dataset(*(shared_data_path("resume_ner", f"{split}.char.bmes")
                                for split in ("train", "dev", "test")))
    assert [len(resume[split]) for split in ("train", "validation", "test")] == [3_821, 463, 477]
    assert {label[0] for label in label_names(resume["train"])} == {"O", "B", "M", "E", "S"}
    cluener = load_ner_dataset(test_file=shared_data_path("cluener2020", "dev.json"))["test"]
    assert len(cluener) == 1_343 and sum(map(len, cluener["tokens"])) == 50_260
    assert len(label_names(cluener)) == 1 + 2 * 10


def test_cluener_nested_entity_keeps_the_outer_one_and_says_so(tmp_path):
    line = ('{"text": "读《星河公司史》", "label": {"book": {"《星河公司史》": [[1, 7]]}, '
            '"company": {"星河公司": [[2, 5]]}}}\n')
    path = write(tmp_path, "nested.json", '{"text": "你好"}\n' + line)
    with pytest.warns(NerDataWarning, match=r"nested.json:2: '星河公司' \(company\) inside '《星河公司史》' \(book\)"):
        dataset = read_cluener(path)
    names = label_names(dataset)
    assert [names[t] for t in dataset["ner_tags"][1]] == ["O", "B-book"] + ["I-book"] * 6
    with pytest.raises(NerDataError, match="nested.json:2: overlapping spans"):
        read_cluener(path, nested="error")


@pytest.mark.data
def test_real_cluener_train_reads_with_its_nested_entity():
    with pytest.warns(NerDataWarning, match="2 nested entities dropped"):  # two companies in one book title (line 1507)
        train = read_cluener(shared_data_path("cluener2020", "train.json"))
    assert len(train) == 10_748


@pytest.mark.parametrize("fixture", ["conll_docstart_before.conll", "conll_docstart_after.conll"])
def test_predictions_follow_the_test_file_line_for_line(tmp_path, fixture):
    """Written predictions keep the test file's -DOCSTART- and blank lines, so they line up with the gold file."""
    source = FIXTURES / fixture
    dataset = read_conll(source)
    predicted = [["O"] * len(tokens) for tokens in dataset["tokens"]]
    predicted[0][0] = "B-MISC"
    path = data.write_prediction_file(tmp_path, dataset["tokens"], predicted, source)
    assert path.name == "test_predictions.txt"
    gold_lines = source.read_text(encoding="utf-8").splitlines()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(gold_lines)
    assert [line.split()[:1] for line in lines] == [line.split()[:1] for line in gold_lines]
    written = read_conll(path)
    assert written["tokens"] == dataset["tokens"] and tags_of(written) == predicted
    assert written["document_id"] == [d.replace(source.stem, "test_predictions") for d in dataset["document_id"]]
    # The first N sentences (--max_predict_samples): the file's lines up to the last of them.
    data.write_prediction_file(tmp_path, dataset["tokens"][:2], predicted[:2], source)
    short = path.read_text(encoding="utf-8").splitlines()
    assert short == lines[: len(short)] and read_conll(path)["tokens"] == dataset["tokens"][:2]
    # JSON input gives JSON lines; no test file (a Hub split) gives plain sentences.
    jsonl = data.write_prediction_file(tmp_path, [["a"]], [["O"]], FIXTURES / "tokens.jsonl")
    assert jsonl.name == "test_predictions.jsonl"
    plain = data.write_prediction_file(tmp_path, [["a", "b"], ["c"]], [["O", "O"], ["O"]])
    assert plain.read_text(encoding="utf-8") == "a\tO\nb\tO\n\nc\tO\n\n"


def test_encode_dataset_is_encode_words_over_each_whole_split():
    """The recipes' encoding: map batches of 1000 sentences (one batch with document context) give the windows of
    the whole split at once, `example_index` numbering the split's sentences."""
    from datasets import concatenate_datasets

    from conftest import tiny_tokenizer
    from hf_bert_tasks.modeling.windows import encode_words
    from hf_bert_tasks.ner.data import encode_dataset

    train = load_ner_dataset(train_file=sample_data_path("en_train.conll"))["train"]
    raw = DatasetDict({"train": concatenate_datasets([train] * 3), "validation": train.select(range(50))})
    assert len(raw["train"]) > 1000  # two map batches
    tag_names = train.features["ner_tags"].feature.names
    label2id = {tag: i for i, tag in enumerate(tag_names)}
    tokenizer = tiny_tokenizer()
    for context_window in (0, 6):
        settings = dict(max_length=16, stride=4, scheme="BIO", strategy="first", context_window=context_window)
        features = encode_dataset(raw, tokenizer, label2id, **settings)
        for split, rows in raw.items():
            tags = [[tag_names[t] for t in sentence] for sentence in rows["ner_tags"]]
            expected = encode_words(tokenizer, rows["tokens"], tags=tags, label2id=label2id,
                                    document_ids=rows["document_id"], **settings)
            assert features[split].to_dict() == expected, (split, context_window)
            assert expected["example_index"][-1] == len(rows) - 1
