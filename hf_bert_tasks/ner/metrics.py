"""Entity-level scores: seqeval in strict mode, computed offline (no metric script from the Hub)."""

from collections.abc import Sequence

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from ..modeling.tagging import convert_tags


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
