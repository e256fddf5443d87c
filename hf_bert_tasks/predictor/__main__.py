"""``python -m hf_bert_tasks.predictor MODEL TEXT [TEXT ...]``: predict with any model the recipes train.

The task comes from the model's ``config.json`` (``auto.task_of``): a token classifier (the CRF model, or a softmax
head) prints the entities of each text, a sequence classifier its label, score and probabilities, and a
question-answering model answers ``--question`` from each text. One JSON line per text. The work is done by each
task's predictor (``ner.predictor.NerPredictor``, ``classification.predictor.TextClassifier``,
``qa.predictor.QuestionAnswerer``), so this prints exactly what those return.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from .auto import predictor_class, task_of


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hf_bert_tasks.predictor", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("texts", nargs="+", help="texts (any length; for QA, the contexts)")
    parser.add_argument("--question", default=None, help="QA models: the question asked of every text")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    from ..modeling import register_auto_classes

    register_auto_classes()  # a CRF folder's config is this package's class, not its copied code
    config = AutoConfig.from_pretrained(args.model, revision=args.revision, trust_remote_code=True)
    task = task_of(config)
    if task == "qa" and args.question is None:
        parser.error(f"{args.model} answers questions: pass --question")
    predictor = predictor_class(task).from_pretrained(args.model, revision=args.revision)
    if task == "ner":
        records = [{"entities": entities} for entities in predictor(args.texts)]
    elif task == "classification":
        records = predictor(args.texts)
    else:
        records = predictor([args.question] * len(args.texts), args.texts)
    for text, record in zip(args.texts, records):
        print(json.dumps({"text": text, **record}, ensure_ascii=False))


if __name__ == "__main__":
    main()
