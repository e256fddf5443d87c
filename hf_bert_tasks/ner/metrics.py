"""Entity-level scores: seqeval in strict mode, computed offline (no metric script from the Hub), and the evaluation of
a recipe's windows (:class:`EntityEvaluation`: the Trainer's predictions back to word tags or entity spans, then
scored), shared by ``recipes/ner.py`` and ``recipes/distill.py``; exact-span scores of nested entities
(:func:`span_scores`)."""

from collections.abc import Callable, Sequence

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from ..modeling.pipeline_bert_crf import decode_emissions
from ..modeling.tagging import best_flat_spans, convert_tags
from ..modeling.windows import merge_span_windows, merge_windows


def entity_scores(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], scheme: str) -> dict:
    """Strict entity-level precision/recall/F1 (overall and per type) and token accuracy.

    Both sides are converted from `scheme` to BIO first (predictions with repair, references must be valid), then
    scored by seqeval with `mode="strict", scheme=IOB2`: an entity counts only when its type and both boundaries
    match. Returns `precision`, `recall`, `f1`, `accuracy` and `per_type` {type: {precision, recall, f1, support}}.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference sentences but {len(predictions)} predicted ones")
    y_true, y_pred = [], []
    for i, (ref, pred) in enumerate(zip(references, predictions)):
        if len(ref) != len(pred):
            raise ValueError(f"sentence {i}: {len(ref)} reference tags but {len(pred)} predicted tags")
        y_true.append(convert_tags(list(ref), scheme, "BIO"))
        y_pred.append(convert_tags(list(pred), scheme, "BIO", repair=True))
    tokens = sum(len(t) for t in y_true)
    correct = sum(a == b for t, p in zip(y_true, y_pred) for a, b in zip(t, p))
    kwargs = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(y_true, y_pred, output_dict=True, **kwargs) if tokens else {}
    per_type = {
        name: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "support": int(v["support"])}
        for name, v in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": precision_score(y_true, y_pred, **kwargs) if tokens else 0.0,
        "recall": recall_score(y_true, y_pred, **kwargs) if tokens else 0.0,
        "f1": f1_score(y_true, y_pred, **kwargs) if tokens else 0.0,
        "accuracy": correct / tokens if tokens else 0.0,
        "per_type": per_type,
    }


def span_scores(references: Sequence[Sequence[tuple]], predictions: Sequence[Sequence[tuple]]) -> dict:
    """Exact-span micro precision/recall/F1 for entities that may nest and overlap (the global pointer head).

    `references[i]`, `predictions[i]`: the entities of sentence i as `(start, end, type)` (end exclusive; any
    order, duplicates counted once). An entity counts only when its type and both boundaries match. Returns
    `precision`, `recall`, `f1`, `nested_recall` (recall on the gold entities that overlap another gold entity of
    their sentence: nested in it, holding it or crossing it; 0 without any), `nested_support` and `per_type`
    {type: {precision, recall, f1, support}}.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference sentences but {len(predictions)} predicted ones")
    counts: dict = {}  # type -> [true positives, predicted, gold]
    nested_found = nested_total = 0
    for gold, found in zip(references, predictions):
        gold, found = {tuple(e) for e in gold}, {tuple(e) for e in found}
        for entity in gold | found:
            row = counts.setdefault(entity[2], [0, 0, 0])
            row[0] += entity in gold and entity in found
            row[1] += entity in found
            row[2] += entity in gold
        for entity in gold:
            if any(other != entity and other[0] < entity[1] and entity[0] < other[1] for other in gold):
                nested_total += 1
                nested_found += entity in found

    def prf(true_positives, predicted, support):
        precision = true_positives / predicted if predicted else 0.0
        recall = true_positives / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": support}

    total = prf(*(sum(row[i] for row in counts.values()) for i in range(3)))
    return {
        "precision": total["precision"], "recall": total["recall"], "f1": total["f1"],
        "nested_recall": nested_found / nested_total if nested_total else 0.0, "nested_support": nested_total,
        "per_type": {kind: prf(*row) for kind, row in sorted(counts.items()) if row[2]},
    }


class EntityEvaluation:
    """A recipe's NER evaluation over windows, shared by ``recipes/ner.py`` and ``recipes/distill.py``: the Trainer's
    predictions of the windows back to each sentence (tags per word for a tagger; entity spans for the global
    pointer), scored against the data (:func:`entity_scores`; :func:`span_scores`).

    Args:
        raw: the splits of ``load_ner_dataset`` (``tokens``, ``ner_tags``; ``entities`` for a span model);
            features: their windows (``encode_words`` output with split-wide ``example_index``), by split; labels:
            the model's labels, in id order (a span model's are entity types); scheme, strategy: the tag scheme and
            label strategy; span_decode: ``None`` for a tagger, ``"flat"`` or ``"nested"`` for a span model.
    """

    def __init__(self, raw, features, labels: Sequence[str], scheme: str, strategy: str,
                 span_decode: str | None = None):
        self.raw, self.features, self.labels = raw, features, list(labels)
        self.scheme, self.strategy, self.span_decode = scheme, strategy, span_decode
        self.tag_names = raw[next(iter(raw))].features["ner_tags"].feature.names

    def decode_logits(self, model) -> Callable:
        """The Trainer's ``preprocess_logits_for_metrics``: each evaluation batch decoded on its device, so that
        only tag ids ``(batch, length)`` are kept (``decode_emissions``: Viterbi, or argmax without a CRF), not the
        emissions; a span model keeps its spans above the threshold ``(batch, most spans, 4)``."""
        if self.span_decode is not None:
            return lambda logits, labels: model.decode(logits)
        return lambda logits, labels: decode_emissions(model, logits, labels != -100, return_probabilities=False)

    def word_tags(self, split: str, predicted_ids) -> list[list[str]]:
        """One tag per word of each sentence of ``split`` from the tag ids ``(windows, length)`` of its windows."""
        windows = self.features[split]
        piece_tags = [[None if t < 0 else self.labels[t] for t in row[: len(w)]]
                      for row, w in zip(predicted_ids.tolist(), windows["word_ids"])]
        tags, _ = merge_windows(windows["word_ids"], windows["example_index"], piece_tags,
                                [len(s) for s in self.raw[split]["tokens"]], scheme=self.scheme,
                                strategy=self.strategy)
        return tags

    def spans(self, split: str, packed) -> list[list[tuple[int, int, str]]]:
        """A span model's entities ``(start, end, type)`` of each sentence of ``split``, from its windows' spans."""
        windows = self.features[split]
        window_spans = [[(int(k), int(a), int(b), p) for k, a, b, p in row if k >= 0] for row in packed.tolist()]
        merged = merge_span_windows(windows["word_ids"], windows["example_index"], window_spans, len(self.raw[split]))
        if self.span_decode == "flat":
            merged = [best_flat_spans(spans) for spans in merged]
        return [[(start, end, self.labels[k]) for k, start, end, _ in spans] for spans in merged]

    def compute_metrics(self, split: str) -> Callable:
        """The Trainer's ``compute_metrics`` for ``split``: the scores with ``<type>_f1`` per type."""
        if self.span_decode is not None:
            gold = [[(e["start"], e["end"], e["type"]) for e in row] for row in self.raw[split]["entities"]]
        else:
            gold = [[self.tag_names[t] for t in sentence] for sentence in self.raw[split]["ner_tags"]]

        def compute(prediction) -> dict:
            if self.span_decode is not None:
                scores = span_scores(gold, self.spans(split, prediction.predictions))
                scores.pop("nested_support")
            else:
                scores = entity_scores(gold, self.word_tags(split, prediction.predictions), self.scheme)
            per_type = {f"{name}_f1": s["f1"] for name, s in scores.pop("per_type").items()}
            return {**scores, **per_type}

        return compute
