"""hf_bert_tasks.pretraining.data: the one plain-text reader (text_lines) and the MLM recipe's splits (load_texts)."""

import pytest

from hf_bert_tasks.files import DataFileError
from hf_bert_tasks.pretraining.data import load_texts, text_lines


def test_text_lines_split_at_newlines_only(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("\ufeffone\r\ntwo\u2028still two\n\n three \n".encode("utf-8"))
    assert list(text_lines(path)) == ["one", "two\u2028still two", "", " three "]


def test_text_lines_name_the_line_of_bad_utf8_and_a_missing_column(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nbroken \xff here\n")
    with pytest.raises(DataFileError, match=r"bad.txt:2: not valid UTF-8"):
        list(text_lines(path))
    columns = tmp_path / "columns.tsv"
    columns.write_text("a\tfirst text\n\nb\tsecond text\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"columns.tsv:4: no tab-separated column 1"):
        list(text_lines(columns, column=1))
    columns.write_text("a\tfirst text\n\nb\tsecond text\n", encoding="utf-8")
    assert list(text_lines(columns, column=1)) == ["first text", "second text"]


def test_load_texts_reads_every_line_of_every_file_streamed_or_not(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("alpha beta\n\ngamma\n", encoding="utf-8")
    second.write_text("delta\n", encoding="utf-8")
    raw = load_texts([str(first), str(second)], validation_file=str(second))
    assert raw["train"]["text"] == ["alpha beta", "", "gamma", "delta"] and raw["validation"]["text"] == ["delta"]
    streamed = load_texts([str(first), str(second)], streaming=True)
    assert [row["text"] for row in streamed["train"]] == ["alpha beta", "", "gamma", "delta"]
    assert streamed["train"].num_shards == 2  # one file per shard: processes of a run read different files
    # A file that changes under the same path is read again, not taken from the cache.
    first.write_text("epsilon\n", encoding="utf-8")
    assert load_texts([str(first)])["train"]["text"] == ["epsilon"]
    with pytest.raises(ValueError, match="pass --train_files"):
        load_texts()
