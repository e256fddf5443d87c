"""``python -m hf_bert_tasks.predictor MODEL TEXT [TEXT ...]``: predict with any model the recipes train.

The task comes from the model's ``config.json`` (``auto.task_of``): a token classifier (the CRF model, or a softmax
head) prints the entities of each text, a sequence classifier its label, score and probabilities, and a
question-answering model answers ``--question`` from each text. One JSON line per text. The work is done by each
task's predictor (``ner.predictor.NerPredictor``, ``classification.predictor.TextClassifier``,
``qa.predictor.QuestionAnswerer``), so this prints exactly what those return.

Corpora: ``--input PATH|- --output PATH`` streams a file (plain text, JSON lines, CoNLL to re-tag) or
``--dataset_name`` through the predictor into JSON lines, CoNLL, Label Studio, doccano or Parquet, in input order,
with ``--resume`` after an interruption and several processes under ``accelerate launch`` (``corpus.py``).

Texts: each argument is one text; ``-`` reads standard input and ``--input PATH`` a UTF-8 file, one text a line (every
line kept, so the output lines up with the input). An argument that names an existing file is still tagged as text,
with a warning pointing to ``--input``. A text without tokens prints ``"entities": []`` (NER) or ``"label": null``
(classification); input the predictors refuse (an empty question, text that is not valid Unicode) is an error that
names it, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence

from ..modeling.threads import share_threads, whole_number
from .auto import DTYPES, predictor_class, task_of
from .corpus import INPUT_FORMATS, OUTPUT_FORMATS, ChunkPredictor, predict_corpus, read_records


def read_texts(texts: Sequence[str], input_path: str | None, stdin=None) -> list[str]:
    """The texts to predict, in order: each positional text, where ``-`` stands for the lines of standard input, then
    the lines of ``--input`` (a UTF-8 text file). One text a line, every line kept (so that the output lines up
    with the input's). A positional text that names an existing file is still a text, with a warning."""
    from ..files import read_lines

    found: list[str] = []
    for text in texts:
        if text == "-":
            found.extend(line.rstrip("\r\n") for line in (stdin or sys.stdin))
            continue
        if len(text) < 4096 and "\n" not in text and os.path.isfile(text):
            warnings.warn(f"the text {text!r} names a file; it is tagged as text. To predict the file's lines, pass "
                          f"--input {text} (or - with the file on standard input)", stacklevel=2)
        found.append(text)
    if input_path is not None:
        found.extend(read_lines(input_path))
    return found


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (refused by the parser, before anything loads)."""
    number = whole_number(value)
    if number is None:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hf_bert_tasks.predictor", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("texts", nargs="*", help="texts (any length; for QA, the contexts); - reads standard input, "
                                                 "one text a line")
    parser.add_argument("--input", default=None, metavar="PATH",
                        help="a UTF-8 text file, one text a line (after the texts given as arguments)")
    parser.add_argument("--question", default=None, help="QA models: the question asked of every text")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads of this process (default: torch's, or the cores it may use divided among "
                             "the local processes of accelerate launch); give each of several processes sharing the "
                             "cores its share (benchmarks/README.md, 'Threads')")
    parser.add_argument("--dtype", choices=DTYPES, default=None,
                        help="the weights' type (default: as saved); a CRF's or span head's own weights stay float32")
    corpus = parser.add_argument_group("corpus prediction (with --output; see hf_bert_tasks/predictor/corpus.py)")
    corpus.add_argument("--output", default=None, metavar="PATH",
                        help="write the predictions of --input (or --dataset_name) here, streaming, in input order")
    corpus.add_argument("--output_format", choices=OUTPUT_FORMATS, default=None,
                        help="default by suffix: .jsonl jsonl, .json labelstudio, .conll conll, .parquet parquet; "
                             "doccano by name")
    corpus.add_argument("--input_format", choices=INPUT_FORMATS, default=None,
                        help="default: jsonl for .jsonl, conll for .conll/.bio/.iob, dataset with --dataset_name, "
                             "else text (one text a line)")
    corpus.add_argument("--text_field", default="text", help="JSON lines: the field holding the text")
    corpus.add_argument("--question_field", default="question", help="QA JSON lines: the question's field")
    corpus.add_argument("--context_field", default="context", help="QA JSON lines: the context's field")
    corpus.add_argument("--dataset_name", default=None, help="a datasets data set (Hub name or save_to_disk folder)")
    corpus.add_argument("--split", default="train", help="its split (default: train)")
    corpus.add_argument("--text_column", default="text", help="its text column (default: text)")
    corpus.add_argument("--chunk_size", type=int, default=256,
                        help="records read, predicted and written at a time (memory is bounded by it)")
    corpus.add_argument("--batch_size", type=int, default=32, help="texts (NER: windows) per forward pass")
    corpus.add_argument("--resume", action="store_true",
                        help="continue an interrupted run after its last complete chunk (line formats)")
    args = parser.parse_args(argv)
    if args.output is not None:
        corpus_main(parser, args)
        return
    try:
        texts = read_texts(args.texts, args.input)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if not texts:
        parser.error("no text to predict: pass texts, - (standard input) or --input PATH")

    from ..progress import quiet_short_bars

    quiet_short_bars()  # no "Loading weights" bar for a load of a second

    from transformers import AutoConfig

    from ..modeling import register_auto_classes

    register_auto_classes()  # a CRF folder's config is this package's class, not its copied code
    share_threads(args.threads)
    config = AutoConfig.from_pretrained(args.model, revision=args.revision, trust_remote_code=True)
    task = task_of(config)
    if task == "qa" and args.question is None:
        parser.error(f"{args.model} answers questions: pass --question")
    predictor = predictor_class(task).from_pretrained(args.model, revision=args.revision, dtype=args.dtype)
    try:
        if task == "ner":
            records = [{"entities": entities} for entities in predictor(texts)]
        elif task == "classification":  # None: a text without tokens gets no prediction
            records = [record or {"label": None, "score": None, "probabilities": None}
                       for record in predictor(texts)]
        else:
            records = predictor([args.question] * len(texts), texts)
    except ValueError as error:  # the predictors' input checks (modeling/texts.py)
        parser.error(str(error))
    for text, record in zip(texts, records):
        print(json.dumps({"text": text, **record}, ensure_ascii=False))


def corpus_main(parser: argparse.ArgumentParser, args) -> None:
    """``--output``: stream ``--input``/``--dataset_name`` through the predictor into ``--output``, in one process or,
    under ``accelerate launch``, in several (:func:`corpus.predict_corpus`)."""
    if args.texts or (args.input is None) == (args.dataset_name is None):
        parser.error("--output predicts --input PATH (or -) or --dataset_name, not texts given as arguments")
    input_format = args.input_format or ("dataset" if args.dataset_name else
                                         "jsonl" if args.input.endswith(".jsonl") else
                                         "conll" if args.input.endswith((".conll", ".bio", ".iob")) else "text")
    from ..progress import quiet_short_bars

    quiet_short_bars()
    from accelerate import PartialState
    from transformers import AutoConfig

    from ..modeling import register_auto_classes

    state = PartialState()  # one process, or one of `accelerate launch`'s
    share_threads(args.threads, workers=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    register_auto_classes()
    config = AutoConfig.from_pretrained(args.model, revision=args.revision, trust_remote_code=True)
    task = task_of(config)
    predictor = predictor_class(task).from_pretrained(args.model, revision=args.revision, device=str(state.device),
                                                      dtype=args.dtype, batch_size=args.batch_size)
    records = read_records(args.input, input_format, dataset_name=args.dataset_name, split=args.split,
                           text_column=args.text_column)
    predict = ChunkPredictor(predictor, task, text_field=args.text_field, question_field=args.question_field,
                             context_field=args.context_field, question=args.question)
    try:
        predict_corpus(records, predict, args.output, output_format=args.output_format, chunk_size=args.chunk_size,
                       resume=args.resume, process_index=state.process_index, num_processes=state.num_processes,
                       wait_for_everyone=state.wait_for_everyone)
    except (OSError, ValueError, KeyError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
