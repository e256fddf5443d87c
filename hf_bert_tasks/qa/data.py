"""Question-answering readers: SQuAD-style JSON files and Hub data sets to ``datasets`` rows; and the writer of the
recipe's prediction files (:func:`write_predictions`).

Data (:func:`read_squad_json`, :func:`load_qa_dataset`)
    SQuAD 1.1 / 2.0 JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
    "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``), which CMRC2018 shares, or a Hub data set with
    the same columns. Every reader returns ``datasets`` rows ``id, title, context, question,
    answers{text: [...], answer_start: [...]}`` (the Hub's ``squad`` layout). Checks, the same for files and Hub:

    - an **answer that is not at its ``answer_start``** is moved to the occurrence of its text nearest to the stated
      offset; an answer whose text does not occur in the context at all keeps its text (it is still a reference for
      scoring, which compares texts) with ``answer_start = -1``, and a question with no locatable answer is left out
      of *training* only. Each kind is reported in a :class:`QaDataWarning` with the count and the ids. (The real
      CMRC2018 files have both: 21 shifted answers in train; in dev 7 shifted ones and 193 paraphrased reference
      answers that occur nowhere in their context, each in a question that keeps another, locatable answer.)
    - an **empty context**, an empty question, an empty answer text, a duplicate id: :class:`QaDataError` naming the
      file and the id.
    - **unanswerable questions in 1.1 mode** (no answers, or ``is_impossible``) are an error naming the ids, not
      skipped: skipping would silently score a model on fewer questions than the file has. Pass
      ``version_2_with_negative=True`` for SQuAD 2.0-style data. A file where *no* question has answers is an
      unlabelled file (prediction only) and is accepted in both modes; training on it is an error.
    - **contexts far longer than the window** are not an error: they are cut into as many overlapping windows as
      they need (below), and every window is scored.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, Features, Value

from ..files import PathLike, write_json

_MAX_IDS_SHOWN = 20


class QaDataError(ValueError):
    """Bad QA input; the message starts with the file (or Hub split) and names the question id(s)."""


class QaDataWarning(UserWarning):
    """QA data that was read with a documented repair (shifted answer offsets, unlocatable answers, cut questions)."""


def squad_features() -> Features:
    """The columns every reader returns (the Hub's ``squad`` layout)."""
    return Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": [Value("string")], "answer_start": [Value("int32")]},
        }
    )


def show_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_IDS_SHOWN])
    return shown + (f", ... ({len(ids) - _MAX_IDS_SHOWN} more)" if len(ids) > _MAX_IDS_SHOWN else "")


# ---------------------------------------------------------------------------------------------------------------
# Readers


def read_squad_json(path: PathLike, version_2_with_negative: bool = False) -> Dataset:
    """One row per question of a SQuAD-style JSON file (SQuAD 1.1, 2.0, CMRC2018); checks in the module docstring.

    Raises :class:`QaDataError` naming the file (and the article/paragraph or question id) for a malformed file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise QaDataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise QaDataError(f'{path}: expected SQuAD JSON, an object with a "data" list of articles')
    records = []
    for a, article in enumerate(data["data"]):
        title = article.get("title", "") if isinstance(article, dict) else None
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise QaDataError(f'{path}: article {a} has no "paragraphs" list')
        for p, paragraph in enumerate(paragraphs):
            where = f"article {a} ({title!r}), paragraph {p}"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise QaDataError(f'{path}: {where} has no "qas" list')
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise QaDataError(f'{path}: {where} has no "context" string')
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), (str, int)):
                    raise QaDataError(f'{path}: {where}, question {q} has no "id"')
                question_id = str(qa["id"])
                if not isinstance(qa.get("question"), str):
                    raise QaDataError(f'{path}: question {question_id} has no "question" string')
                answers = qa.get("answers", [])
                if not isinstance(answers, list) or not all(
                    isinstance(x, dict) and isinstance(x.get("text"), str) and isinstance(x.get("answer_start"), int)
                    for x in answers
                ):
                    raise QaDataError(f'{path}: question {question_id}: "answers" must be a list of '
                                      '{"text": str, "answer_start": int}')
                if qa.get("is_impossible") and answers:
                    raise QaDataError(f"{path}: question {question_id} is marked is_impossible but has answers")
                records.append({
                    "id": question_id, "title": str(title or ""), "context": context, "question": qa["question"],
                    "answers": {"text": [x["text"] for x in answers],
                                "answer_start": [x["answer_start"] for x in answers]},
                })
    return _checked_dataset(str(path), records, version_2_with_negative)


def load_qa_dataset(
    train_file: PathLike | None = None,
    validation_file: PathLike | None = None,
    test_file: PathLike | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    version_2_with_negative: bool = False,
) -> DatasetDict:
    """SQuAD-style files into ``train``/``validation``/``test`` (those given), or a Hub data set with the columns
    ``id, context, question, answers`` (``title`` optional), e.g. ``squad``, ``squad_v2``, ``cmrc2018``: a thin
    wrapper over ``datasets.load_dataset(dataset_name, dataset_config)`` that applies the same checks."""
    files = {split: path for split, path in (("train", train_file), ("validation", validation_file),
                                             ("test", test_file)) if path is not None}
    if dataset_name is not None:
        if files:
            raise ValueError("give either dataset_name or data files, not both")
        raw = datasets.load_dataset(dataset_name, dataset_config)
        splits = {}
        for split, dataset in raw.items():
            where = f"{dataset_name}[{split}]"
            missing = {"id", "context", "question", "answers"} - set(dataset.column_names)
            if missing:
                raise QaDataError(f"{where}: missing column(s) {', '.join(sorted(missing))}; "
                                  f"have {dataset.column_names}")
            records = [{
                "id": str(row["id"]), "title": str(row.get("title") or ""), "context": row["context"],
                "question": row["question"],
                "answers": {"text": list(row["answers"]["text"]),
                            "answer_start": [int(s) for s in row["answers"]["answer_start"]]},
            } for row in dataset]
            splits[split] = _checked_dataset(where, records, version_2_with_negative)
        return DatasetDict(splits)
    if not files:
        raise ValueError("give train_file, validation_file or test_file, or dataset_name")
    return DatasetDict({split: read_squad_json(path, version_2_with_negative) for split, path in files.items()})


def require_training_questions(dataset: Dataset, source: str, version_2_with_negative: bool = False) -> None:
    """Raise :class:`QaDataError` when no question of ``dataset`` (the training split, after any
    ``--max_train_samples``) can be trained on, saying why; the Trainer would otherwise fail later with "No columns in
    the dataset match the model's forward method signature".

    A question trains when one of its answers was located in its context (``answer_start >= 0``) or, with
    ``version_2_with_negative``, when it has no answer (the target is then ``[CLS]``)."""
    answers = dataset["answers"]
    if any(any(start >= 0 for start in a["answer_start"]) or (version_2_with_negative and not a["text"])
           for a in answers):
        return
    n = len(answers)
    if not any(a["text"] for a in answers):
        why = "none has an answer (an unlabelled file can be predicted, not trained on)"
    else:
        unlocated = [question_id for question_id, a in zip(dataset["id"], answers) if a["text"]]
        why = (f"the answers of all {len(unlocated)} answered question(s) occur nowhere in their contexts, so no "
               f"answer can be located for a training target (ids: {show_ids(unlocated)}); check that each "
               "answer's text is copied exactly from its context")
    raise QaDataError(f"{source}: no training question is left of {n}: {why}")


def _nearest_occurrence(context: str, text: str, stated: int) -> int:
    """Start of the occurrence of ``text`` in ``context`` nearest to ``stated`` (the earlier one on a tie); -1 if
    there is none. Occurrences may overlap."""
    best, position = -1, context.find(text)
    while position != -1:
        if best == -1 or abs(position - stated) < abs(best - stated):
            best = position
        position = context.find(text, position + 1)
    return best


def _checked_dataset(source: str, records: list[dict], version_2_with_negative: bool) -> Dataset:
    """The content checks shared by files and Hub splits (module docstring); repairs offsets in place."""
    if not records:
        raise QaDataError(f"{source}: no questions")
    seen: set[str] = set()
    shifted, unlocatable, untrainable, unanswerable = [], [], [], []
    for record in records:
        question_id = record["id"]
        if question_id in seen:
            raise QaDataError(f"{source}: duplicate question id {question_id}")
        seen.add(question_id)
        if not record["context"].strip():
            raise QaDataError(f"{source}: question {question_id} has an empty context")
        if not record["question"].strip():
            raise QaDataError(f"{source}: question {question_id} is empty")
        answers = record["answers"]
        if not answers["text"]:
            unanswerable.append(question_id)
            continue
        for i, (text, start) in enumerate(zip(answers["text"], answers["answer_start"])):
            if not text.strip():
                raise QaDataError(f"{source}: question {question_id} has an empty answer text")
            if start >= 0 and record["context"][start:start + len(text)] == text:
                continue
            found = _nearest_occurrence(record["context"], text, start)
            answers["answer_start"][i] = found
            (shifted if found >= 0 else unlocatable).append(question_id)
        if all(start < 0 for start in answers["answer_start"]):
            untrainable.append(question_id)
    if unanswerable and not version_2_with_negative and len(unanswerable) < len(records):
        raise QaDataError(f"{source}: {len(unanswerable)} question(s) without answers in SQuAD 1.1 mode "
                          f"(ids: {show_ids(unanswerable)}); pass version_2_with_negative=True "
                          "(--version_2_with_negative) for SQuAD 2.0-style data")
    if shifted:
        warnings.warn(QaDataWarning(
            f"{source}: {len(shifted)} answer(s) not at their answer_start were moved to the nearest occurrence of "
            f"their text (questions: {show_ids(list(dict.fromkeys(shifted)))})"), stacklevel=3)
    if unlocatable:
        dropped = (f"; {len(untrainable)} question(s) without any locatable answer are left out of training "
                   f"(ids: {show_ids(untrainable)})" if untrainable else "")
        warnings.warn(QaDataWarning(
            f"{source}: {len(unlocatable)} answer(s) do not occur in their context and are kept as reference texts "
            f"for scoring only, with answer_start -1 (questions: {show_ids(list(dict.fromkeys(unlocatable)))})"
            f"{dropped}"), stacklevel=3)
    return Dataset.from_list(records, features=squad_features())


def write_predictions(predicted: dict, output_dir: PathLike, prefix: str = "", with_null_odds: bool = False) -> None:
    """``{prefix}predictions.json`` ({id: answer}, the official evaluation scripts' input),
    ``{prefix}nbest_predictions.json`` and, with ``with_null_odds`` (2.0-style data), ``{prefix}null_odds.json``
    ({id: null score - best span score}) from :func:`postprocess_predictions` output."""
    files = {"predictions": {i: p["answer"] for i, p in predicted.items()},
             "nbest_predictions": {i: p["nbest"] for i, p in predicted.items()}}
    if with_null_odds:
        files["null_odds"] = {i: p["null_score_diff"] for i, p in predicted.items()}
    for name, content in files.items():
        write_json(Path(output_dir) / f"{prefix}{name}.json", content)
