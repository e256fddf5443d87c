"""The pipeline that ships with every global pointer model: nested entities from
`pipeline("token-classification", model=..., trust_remote_code=True)`.

```python
from transformers import pipeline

ner = pipeline("token-classification", model="ORG/NAME", trust_remote_code=True)
ner("IL-2 gene expression requires NF-kappa B.")
# [{'entity_group': 'DNA', 'score': 0.97, 'word': 'IL-2 gene', 'start': 0, 'end': 9},
#  {'entity_group': 'protein', 'score': 0.95, 'word': 'IL-2', 'start': 0, 'end': 4}, ...]
```

The CRF pipeline's input side is reused as it is (`pipeline_bert_crf.py`: the checks of `texts.py`, raw text split
into words, words into the overlapping windows the model was trained on, windows streamed and batched by length,
`is_split_into_words`, and `WordSequences` for `NerPredictor`). What differs is the output side: each window's span
scores are decoded to the spans above the threshold (`model.decode`), every span is taken from the window where it
has the most context (`windows.merge_span_windows`), and the result is entities, which may nest and overlap:
`entity_group` (the type), `score` (the sigmoid of the span's score), `word` (`text[start:end]`), `start`, `end`,
sorted by start, then end. Every `aggregation_strategy` gives these entity dicts (a span model has no per-word tags).

Call parameters beyond the CRF pipeline's: `threshold` (default: the config's, 0) and `decode` (`"nested"`, or
`"flat"`: the non-overlapping entities whose scores sum highest, `tagging.best_flat_spans`; default: the config's).
`ignore_labels` drops entity types. A batch of windows whose span scores would exceed `MAX_SPAN_SCORES` floats (long
windows, many types) runs in slices, so `batch_size` cannot make the span matrices outgrow memory. For
`WordSequences` input the output is, per sentence, the spans `(type, start word, end word (exclusive), score)`.
"""

import torch

from .configuration_bert_global_pointer import DECODINGS
from .pipeline_bert_crf import BertCrfTokenClassificationPipeline
from .tagging import best_flat_spans
from .windows import merge_span_windows


# The guard for long windows: a forward pass holds `windows x types x T x T` span scores; a batch that would hold more
# than this many runs in slices of windows (2**26 float32 scores: 256 MB; e.g. 32 windows of 512 tokens, 8 types).
MAX_SPAN_SCORES = 2**26


class BertGlobalPointerPipeline(BertCrfTokenClassificationPipeline):
    """Nested entities with a global pointer model, for text of any length (see the module docstring)."""

    def _sanitize_parameters(self, threshold=None, decode=None, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        postprocess.pop("aggregation_strategy", None)  # checked by the CRF pipeline's rule, meaningless here
        if threshold is not None:
            forward["threshold"] = float(threshold)
        if decode is not None:
            if decode not in DECODINGS:
                raise ValueError(f"decode must be one of {DECODINGS}, got {decode!r}")
            postprocess["decode"] = decode
        return preprocess, forward, postprocess

    def _forward(self, model_inputs, threshold=None):
        """A batch of windows -> their spans above the threshold, `(batch, most spans, 4)` (`model.decode`)."""
        meta = {key: model_inputs.pop(key) for key in ("window", "item", "is_last")}
        batch, length = model_inputs["input_ids"].shape
        rows = max(1, MAX_SPAN_SCORES // (self.model.config.num_labels * length * length))
        spans = [self.model.decode(self.model(**{k: v[i:i + rows] for k, v in model_inputs.items()}).logits,
                                   threshold).cpu() for i in range(0, batch, rows)]
        width = max(s.shape[1] for s in spans)  # each slice is padded to its own most spans
        spans = torch.cat([torch.nn.functional.pad(s, (0, 0, 0, width - s.shape[1]), value=-1.0) for s in spans])
        return {"spans": spans, **meta}

    def postprocess(self, all_outputs, decode=None, ignore_labels=None):
        """The windows of one input -> its spans per sentence (`merge_span_windows`) -> entities."""
        item = all_outputs[0]["item"]
        window_spans = [[] for _ in item.word_ids]
        for output in all_outputs:
            if output["window"] >= 0:
                spans = output["spans"][0]
                window_spans[output["window"]] = [(int(k), int(s), int(e), float(p))
                                                  for k, s, e, p in spans[spans[:, 0] >= 0].tolist()]
        sentences = merge_span_windows(item.word_ids, item.example_index, window_spans, len(item.sentences))
        if (decode or self._config("decode", "nested")) == "flat":
            sentences = [best_flat_spans(spans) for spans in sentences]
        id2label = self.model.config.id2label
        sentences = [[(id2label[k], s, e, p) for k, s, e, p in spans] for spans in sentences]
        if item.text is None:
            return sentences
        ignore = set(ignore_labels or ())
        entities = []
        for kind, start, end, score in sentences[0]:
            first, last = item.words[start][1], item.words[end - 1][2]
            if kind not in ignore:
                entities.append({"entity_group": kind, "score": score, "word": item.text[first:last],
                                 "start": first, "end": last})
        return entities


__all__ = ["BertGlobalPointerPipeline"]
