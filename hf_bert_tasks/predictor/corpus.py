"""Corpus prediction: a file, standard input or a data set in, one prediction record per input record out, for inputs
larger than memory and runs that may be killed or spread over processes.

- **Streams.** Records are read lazily and predicted in chunks of ``chunk_size`` records; each chunk's output is
  written (and flushed) before the next chunk is read, so memory holds one chunk. Within a chunk the predictors
  batch by length (the NER pipeline and the classifier sort their windows by length; QA questions are sorted by
  the length of their contexts here), and the output keeps the input order.
- **Chunks are fixed by position** (records ``k * chunk_size`` to ``(k + 1) * chunk_size``), so every chunk is
  predicted from the same inputs in the same batches whichever process runs it and whenever: that is what makes a
  resumed or a multi-process run byte-identical to a plain one.
- **Resume** (``resume=True``, line formats only: JSON lines, doccano, CoNLL): the output's complete chunks are kept,
  anything after them (a chunk cut off by ``kill -9``, even mid-line) is cut away, and prediction continues with the
  next chunk. Nothing is duplicated or lost. Resume with the run's own ``chunk_size`` (and number of processes).
- **Scale-out on accelerate**: under ``accelerate launch --num_processes N`` (``--cpu`` for CPU processes) process
  ``r`` predicts chunks ``r, r + N, ...`` into ``OUTPUT.part-r-of-N``; after a barrier the main process interleaves
  the parts chunk by chunk into ``OUTPUT`` (reading them record by record) and removes them.

Input formats (``input_format``): ``text`` (one text a line, every line kept), ``jsonl`` (one JSON object a line;
``text_field``, QA ``question_field``/``context_field``; other fields are kept in the output), ``conll`` (NER
re-tagging: token-per-line sentences, the token in the first column, blank lines between sentences, ``-DOCSTART-``
lines skipped), ``dataset`` (a ``datasets`` data set: a Hub name or a folder written by ``save_to_disk``, ``split``,
``text_column``). Output formats (``output_format``, default by suffix): ``jsonl`` (input fields plus the
predictions), ``conll`` (CoNLL input only: each token with its predicted tag), ``labelstudio`` (Label Studio tasks
with pre-annotations, a JSON array), ``doccano`` (JSON lines), ``parquet`` (the ``jsonl`` records as a table).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

INPUT_FORMATS = ("text", "jsonl", "conll", "dataset")
OUTPUT_FORMATS = ("jsonl", "conll", "labelstudio", "doccano", "parquet")
LINE_FORMATS = ("jsonl", "doccano", "conll")  # resumable: complete records end with a newline
SUFFIXES = {".jsonl": "jsonl", ".json": "labelstudio", ".conll": "conll", ".parquet": "parquet"}


# --- reading ---------------------------------------------------------------------------------------------------------
def _lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    with open(path, encoding="utf-8-sig", newline="") as lines:
        yield from (line.rstrip("\r\n") for line in lines)


def read_records(path: str | None, input_format: str, *, dataset_name: str | None = None, split: str = "train",
                 text_column: str = "text") -> Iterator[dict]:
    """The input records, one dict each, lazily: ``{"text"}`` per line of a text file, the object of each JSON line,
    ``{"tokens"}`` per CoNLL sentence, a data set's rows."""
    if input_format == "text":
        yield from ({"text": line} for line in _lines(path))
    elif input_format == "jsonl":
        for lineno, line in enumerate(_lines(path), 1):
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{lineno}: a JSON object expected, found {type(record).__name__}")
                yield record
    elif input_format == "conll":
        tokens = []
        for line in _lines(path):
            if line.strip() and not line.startswith("-DOCSTART-"):
                tokens.append(line.split()[0])
            elif tokens:
                yield {"tokens": tokens}
                tokens = []
        if tokens:
            yield {"tokens": tokens}
    elif input_format == "dataset":
        import datasets

        if Path(dataset_name).is_dir():
            data = datasets.load_from_disk(dataset_name)
            data = data[split] if isinstance(data, datasets.DatasetDict) else data
        else:
            data = datasets.load_dataset(dataset_name, split=split, streaming=True)
        for row in data:
            yield {"text": row[text_column], **{k: v for k, v in row.items() if k != text_column}}
    else:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {', '.join(INPUT_FORMATS)}")


# --- predicting ------------------------------------------------------------------------------------------------------
class ChunkPredictor:
    """Predictions of a chunk of input records, as output records (the input's fields, then the predictions)."""

    def __init__(self, predictor, task: str, *, text_field: str = "text", question_field: str = "question",
                 context_field: str = "context", question: str | None = None):
        self.predictor, self.task = predictor, task
        self.text_field, self.question_field, self.context_field = text_field, question_field, context_field
        self.question = question

    def _field(self, records: list[dict], field: str) -> list:
        for record in records:
            if field not in record:
                raise ValueError(f"an input record has no field {field!r} (its fields: {', '.join(record)})")
        return [record[field] for record in records]

    def __call__(self, records: list[dict]) -> list[dict]:
        if self.task == "ner" and records and "tokens" in records[0] and getattr(self.predictor, "spans", False):
            # A span model: its entities over the words, nested ones included (the `spans` reader's layout).
            found = self.predictor.predict_words(self._field(records, "tokens"))
            return [{**record, "entities": [{"start": start, "end": end, "type": kind, "score": score}
                                            for kind, start, end, score in spans]}
                    for record, spans in zip(records, found)]
        if self.task == "ner" and records and "tokens" in records[0]:
            tags, _ = self.predictor.predict_words(self._field(records, "tokens"))
            return [{**record, "ner_tags": row} for record, row in zip(records, tags)]
        if self.task == "qa":
            contexts = self._field(records, self.context_field if self.question is None else self.text_field)
            questions = [self.question] * len(records) if self.question is not None else \
                self._field(records, self.question_field)
            order = sorted(range(len(records)), key=lambda i: len(contexts[i]))  # windows of similar lengths
            answers = self.predictor([questions[i] for i in order], [contexts[i] for i in order])
            by_input = dict(zip(order, answers))
            return [{**record, **by_input[i]} for i, record in enumerate(records)]
        texts = self._field(records, self.text_field)
        if self.task == "ner":
            return [{**record, "entities": entities} for record, entities in zip(records, self.predictor(texts))]
        empty = {"label": None, "score": None, "probabilities": None}  # a text without tokens
        return [{**record, **(result or empty)} for record, result in zip(records, self.predictor(texts))]


# --- writing ---------------------------------------------------------------------------------------------------------
def output_format_of(path: str, output_format: str | None) -> str:
    if output_format is None:
        output_format = SUFFIXES.get(Path(path).suffix.lower(), "jsonl")
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    return output_format


def render_chunk(records: list[dict], output_format: str) -> str:
    """The text of a chunk of output records in a line format (the unit written, flushed and resumed)."""
    if output_format == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if output_format == "doccano":
        return "".join(json.dumps({"text": r["text"], "label": [[e["start"], e["end"], e["type"]]
                                                                for e in r["entities"]]}, ensure_ascii=False) + "\n"
                       for r in records)
    if output_format == "conll":
        if records and "entities" in records[0] and "ner_tags" not in records[0]:
            raise ValueError("a span model's entities may nest: CoNLL columns cannot hold them; use jsonl")
        if records and "ner_tags" not in records[0]:
            raise ValueError("CoNLL output re-tags CoNLL input (--input_format conll); for text use jsonl, "
                             "labelstudio or doccano")
        return "".join("".join(f"{token} {tag}\n" for token, tag in zip(r["tokens"], r["ner_tags"])) + "\n"
                       for r in records)
    raise ValueError(f"{output_format} is not a line format")


def complete_chunks(path: Path, output_format: str, chunk_size: int) -> tuple[int, int]:
    """(records, bytes) of the complete chunks at the start of a line-format output file, read line by line: a
    record is complete when its closing newline (CoNLL: the blank line) was written."""
    records = offset = 0
    kept = (0, 0)
    with open(path, "rb") as lines:
        for line in lines:
            if not line.endswith(b"\n"):
                break  # cut off mid-line
            offset += len(line)
            if output_format != "conll" or line == b"\n":
                records += 1
                if records % chunk_size == 0:
                    kept = (records, offset)
    return kept


def chunks(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _progress(total: int | None, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=" texts", disable=not enabled, smoothing=0.1)


def predict_corpus(records: Iterable[dict], predict: ChunkPredictor, output: str, *, output_format: str | None = None,
                   chunk_size: int = 256, resume: bool = False, process_index: int = 0, num_processes: int = 1,
                   wait_for_everyone=None, progress: bool = True, total: int | None = None) -> int:
    """Predict ``records`` chunk by chunk into ``output`` (see the module docstring); returns the records written
    by this process."""
    output_format = output_format_of(output, output_format)
    if resume and output_format not in LINE_FORMATS:
        raise ValueError(f"--resume needs a line format ({', '.join(LINE_FORMATS)}), not {output_format}")
    if num_processes > 1 and output_format not in LINE_FORMATS:
        raise ValueError(f"several processes need a line format ({', '.join(LINE_FORMATS)}), not {output_format}")
    target = Path(output if num_processes == 1 else f"{output}.part-{process_index}-of-{num_processes}")
    skip = 0
    if resume and target.exists():
        skip, length = complete_chunks(target, output_format, chunk_size)
        with open(target, "r+b") as out:
            out.truncate(length)  # what follows the complete chunks: a chunk cut off mid-write
    written = 0
    mine = (chunk for k, chunk in enumerate(chunks(records, chunk_size)) if k % num_processes == process_index)
    bar = _progress(total, skip * num_processes, progress and process_index == 0)
    if output_format in LINE_FORMATS:
        with open(target, "a" if skip else "w", encoding="utf-8", newline="") as out:
            for chunk in mine:
                if written < skip:
                    written += len(chunk)  # predicted by the run that was cut off
                    continue
                out.write(render_chunk(predict(chunk), output_format))
                out.flush()
                written += len(chunk)
                bar.update(len(chunk) * num_processes)
    else:
        written = _write_whole(mine, predict, target, output_format, bar)
    bar.close()
    if num_processes > 1:
        wait_for_everyone()
        if process_index == 0:
            merge_parts(output, output_format, chunk_size, num_processes)
        wait_for_everyone()
    return written


def _write_whole(chunked, predict, target: Path, output_format: str, bar) -> int:
    """Label Studio (one JSON array) and Parquet (row groups): written chunk by chunk, not resumable."""
    from ..ner.annotation_tools import labelstudio_tasks

    written = 0
    if output_format == "labelstudio":
        with open(target, "w", encoding="utf-8") as out:
            out.write("[")
            for chunk in chunked:
                records = predict(chunk)
                for task in labelstudio_tasks([r["text"] for r in records], [r["entities"] for r in records]):
                    out.write(("," if written else "") + "\n" + json.dumps(task, ensure_ascii=False))
                    written += 1
                bar.update(len(chunk))
            out.write("\n]\n")
        return written
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for chunk in chunked:
            records = [{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                        for k, v in record.items()} for record in predict(chunk)]  # nested values as JSON text
            table = pa.Table.from_pylist(records)
            writer = writer or pq.ParquetWriter(target, table.schema)
            writer.write_table(table.cast(writer.schema))
            written += len(records)
            bar.update(len(chunk))
    finally:
        if writer is not None:
            writer.close()
    return written


def _next_record(reader, output_format: str) -> bytes:
    """The next record of a line-format part file (b"" at its end)."""
    if output_format != "conll":
        return reader.readline()
    lines = []
    while line := reader.readline():
        lines.append(line)
        if line == b"\n":
            break
    return b"".join(lines)


def merge_parts(output: str, output_format: str, chunk_size: int, num_processes: int) -> None:
    """Interleave the parts of a multi-process run, chunk by chunk (chunk k is in part k mod N), into ``output``,
    reading them record by record; the parts are removed."""
    parts = [Path(f"{output}.part-{r}-of-{num_processes}") for r in range(num_processes)]
    readers = [open(part, "rb") for part in parts]
    try:
        with open(output, "wb") as out:
            rank = 0
            while True:
                written = 0
                while written < chunk_size and (record := _next_record(readers[rank], output_format)):
                    out.write(record)
                    written += 1
                if written < chunk_size:
                    break  # the last chunk: short, or none left
                rank = (rank + 1) % num_processes
    finally:
        for reader in readers:
            reader.close()
    for part in parts:
        os.remove(part)
