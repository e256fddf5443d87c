"""``python -m hf_bert_tasks.predictor MODEL TEXT [TEXT ...]``: predict with any model the recipes train.

The task comes from the model's ``config.json`` (:func:`task_of`): a token classifier (the CRF model, or a softmax
head) prints the entities of each text, a sequence classifier its label, score and probabilities, and a
question-answering model answers ``--question`` from each text. One JSON line per text. The work is done by each
task's predictor (``ner.predictor.NerPredictor``, ``classification.predictor.TextClassifier``,
``qa.predictor.answer_questions``), so this prints exactly what those return.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

TASKS = ("ner", "classification", "qa")


def task_of(config) -> str:
    """``"ner"``, ``"classification"`` or ``"qa"`` from a config's ``architectures`` (or its CRF model type)."""
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) == "bert_crf" or "TokenClassification" in architectures:
        return "ner"
    if "SequenceClassification" in architectures:
        return "classification"
    if "QuestionAnswering" in architectures:
        return "qa"
    raise ValueError(f"cannot tell the task of a model with architectures {architectures or 'none'!r} "
                     f"(model_type {getattr(config, 'model_type', None)!r}); expected a token classifier, a "
                     "sequence classifier or a question-answering model")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hf_bert_tasks.predictor", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("texts", nargs="+", help="texts (any length; for QA, the contexts)")
    parser.add_argument("--question", default=None, help="QA models: the question asked of every text")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(args.model, revision=args.revision, trust_remote_code=True)
    task = task_of(config)
    if task == "ner":
        from .ner.predictor import NerPredictor

        predictor = NerPredictor.from_pretrained(args.model, revision=args.revision)
        records = [{"entities": entities} for entities in predictor(args.texts)]
    elif task == "classification":
        from .classification.predictor import TextClassifier

        records = TextClassifier.from_pretrained(args.model, revision=args.revision)(args.texts)
    else:
        from .qa.predictor import answer_questions

        if args.question is None:
            parser.error(f"{args.model} answers questions: pass --question")
        records = answer_questions(args.model, [args.question] * len(args.texts), args.texts)
    for text, record in zip(args.texts, records):
        print(json.dumps({"text": text, **record}, ensure_ascii=False))


if __name__ == "__main__":
    main()
