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
