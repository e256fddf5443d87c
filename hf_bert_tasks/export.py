"""ONNX export of a token-classification model, and the NER predictor running it with ONNX Runtime.

What goes into the ONNX file
----------------------------
The encoder and the emission layer: inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
tokenizer makes them), all ``(batch, length)`` int64, output ``logits`` ``(batch, length, num_labels)`` float32;
batch and length are dynamic axes. The CRF's *effective* scores (``LinearChainCRF.effective_scores``: forbidden moves at
``FORBIDDEN_SCORE``) and the label list are written into the file's metadata (``metadata_props``), so the numbers of
the model all live in one file; the folder the model came from still gives the tokenizer and the window settings.

What stays outside: the CRF's decoding. Viterbi and the marginals are loops over time of tiny (K, K) steps whose
length depends on the data; in a graph they would be ``Loop``/``Scan`` ops that runtimes handle poorly, while in
numpy they cost microseconds per sentence next to the encoder's milliseconds. They are written here
(:func:`viterbi_decode`, :func:`crf_marginals`) in float64, vectorised over the batch, and the tests check them
against ``model.decode``/``model.tag_probabilities`` and against brute force.

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript). The legacy TorchScript tracer
is not used: it bakes transformers' attention-mask branches in as constants, and on a random tiny BERT its logits
were 0.1-0.2 away from PyTorch's on other shapes, while the dynamo export agrees to 1e-7. Export checks itself:
ONNX Runtime must reproduce PyTorch's logits on a batch of another shape than the example it was traced with.

Predicting
----------
:class:`OnnxNerPredictor` is a :class:`~hf_bert_tasks.ner.predictor.NerPredictor` whose model is an ONNX Runtime
session: words, windows (``features.encode_words``), merging (``features.merge_windows``) and entities
(``tagging.entities_from_words``) are the predictor's own code; only the forward pass and the CRF decoding differ.
:class:`OnnxTokenClassifier` gives the session the small model interface that the predictor uses (``config``,
``eval()``, ``parameters()``, ``__call__(**inputs).logits``, and ``decode``/``tag_probabilities`` for a CRF).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer
from transformers.modeling_outputs import TokenClassifierOutput

from .ner.predictor import NerPredictor

__all__ = [
    "DEFAULT_OPSET",
    "OnnxCrfTokenClassifier",
    "OnnxNerPredictor",
    "OnnxTokenClassifier",
    "crf_marginals",
    "export_onnx",
    "load_onnx_token_classifier",
    "viterbi_decode",
]

DEFAULT_OPSET = 18
METADATA_LABELS = "hf_bert_tasks.labels"
METADATA_CRF = "hf_bert_tasks.crf"  # JSON {"start": (K,), "transitions": (K, K), "end": (K,)}, effective scores
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------------------------
# CRF decoding in numpy
# ---------------------------------------------------------------------------------------------------------------


def _check_crf_inputs(emissions, mask, start, transitions, end):
    emissions = np.asarray(emissions, dtype=np.float64)
    if emissions.ndim != 3:
        raise ValueError(f"emissions must have shape (batch, length, num_tags), got {emissions.shape}")
    batch, length, k = emissions.shape
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (batch, length):
        raise ValueError(f"mask must have shape {(batch, length)} like emissions[..., 0], got {mask.shape}")
    start, transitions, end = (np.asarray(x, dtype=np.float64) for x in (start, transitions, end))
    for name, value, shape in (("start", start, (k,)), ("transitions", transitions, (k, k)), ("end", end, (k,))):
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for {k} tags, got {value.shape}")
    if batch:
        if length == 0 or not mask[:, 0].all():
            row = 0 if length == 0 else int(np.flatnonzero(~mask[:, 0])[0])
            raise ValueError(f"row {row} has no tokens: every sequence needs at least one position in the mask")
        gaps = (mask[:, 1:] & ~mask[:, :-1]).any(axis=1)
        if gaps.any():
            row = int(np.flatnonzero(gaps)[0])
            raise ValueError(f"mask must be right-padded (True then False in each row), row {row} is not")
    return emissions, mask, start, transitions, end


def viterbi_decode(emissions, mask, start, transitions, end) -> np.ndarray:
    """Best tag path of each row under a linear-chain CRF (the model of ``hf_bert_tasks.modeling.crf``).

    Args:
        emissions: ``(batch, length, K)`` scores.
        mask: ``(batch, length)`` bool, right-padded, at least one True per row.
        start, transitions, end: ``(K,)``, ``(K, K)`` (``transitions[i, j]``: from tag i to tag j), ``(K,)``; pass
            the CRF's *effective* scores (forbidden moves already at ``FORBIDDEN_SCORE``).
    Returns:
        ``(batch, length)`` int64 tag ids, -1 outside the mask. Float64 throughout; among exactly tied paths the one
        with the lowest tag ids at the end wins (``argmax`` takes the first maximum).
    """
    emissions, mask, start, transitions, end = _check_crf_inputs(emissions, mask, start, transitions, end)
    batch, length, k = emissions.shape
    path = np.full((batch, length), -1, dtype=np.int64)
    if batch == 0:
        return path
    lengths = mask.sum(axis=1)
    score = start + emissions[:, 0]  # (B, K): best score of a path over 0..t ending in each tag
    back = np.zeros((length, batch, k), dtype=np.int64)  # back[t, b, j]: best tag at t - 1 before tag j at t
    for t in range(1, length):
        candidates = score[:, :, None] + transitions[None]  # (B, K_in, K_out)
        back[t] = candidates.argmax(axis=1)
        stepped = np.take_along_axis(candidates, back[t][:, None, :], axis=1)[:, 0] + emissions[:, t]
        score = np.where(mask[:, t, None], stepped, score)  # a finished row keeps its final score
    tag = (score + end).argmax(axis=1)  # (B,) tag at each row's last position
    rows = np.arange(batch)
    for t in range(length - 1, -1, -1):
        inside = t < lengths
        path[inside, t] = tag[inside]
        if t:
            tag = np.where(inside, back[t, rows, tag], tag)
    return path


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def crf_marginals(emissions, mask, start, transitions, end) -> np.ndarray:
    """Marginal probabilities ``p(y_t = k | x)`` under the CRF, by the forward-backward algorithm in log space.

    Arguments as for :func:`viterbi_decode`. Returns ``(batch, length, K)`` float64, each row of a masked position
    summing to 1, zeros outside the mask.
    """
    emissions, mask, start, transitions, end = _check_crf_inputs(emissions, mask, start, transitions, end)
    batch, length, k = emissions.shape
    if batch == 0:
        return np.zeros((0, length, k))
    alpha = np.empty((length, batch, k))  # log-sum over paths 0..t ending in each tag, emission at t included
    alpha[0] = start + emissions[:, 0]
    for t in range(1, length):
        stepped = _logsumexp(alpha[t - 1][:, :, None] + transitions[None], axis=1) + emissions[:, t]
        alpha[t] = np.where(mask[:, t, None], stepped, alpha[t - 1])
    beta = np.empty((length, batch, k))  # log-sum over the rest of the path after tag i at t (end included)
    beta[length - 1] = end
    for t in range(length - 2, -1, -1):
        stepped = _logsumexp(transitions[None] + (emissions[:, t + 1] + beta[t + 1])[:, None, :], axis=2)
        beta[t] = np.where(mask[:, t + 1, None], stepped, end)  # t is the row's last position: only the end move
    log_z = _logsumexp(alpha[length - 1] + end, axis=1)  # alpha stops changing after each row's last position
    marginals = np.exp(alpha + beta - log_z[None, :, None]).transpose(1, 0, 2)
    return np.where(mask[:, :, None], marginals, 0.0)


def _compact(tag_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-align each row's labelled positions (as ``modeling_bert_crf.compact_positions``): ``index`` and
    ``mask`` ``(batch, n)``, n the largest count (at least 1)."""
    counts = tag_mask.sum(axis=1)
    width = max(int(counts.max()), 1) if tag_mask.size else 1
    index = np.argsort(~tag_mask, axis=1, kind="stable")[:, :width]
    return index, np.arange(width)[None, :] < counts[:, None]


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------


class _Emissions(torch.nn.Module):
    """The exported function: model inputs, positionally, to the emission scores."""

    def __init__(self, model, input_names: Sequence[str]):
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs))).logits


def _example_inputs(tokenizer, input_names, texts) -> dict[str, torch.Tensor]:
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return {name: encoded[name] for name in input_names}


def export_onnx(model_dir: PathLike, onnx_path: PathLike, opset: int = DEFAULT_OPSET, *, rtol: float = 1e-3,
                atol: float = 1e-4) -> Path:
    """Export the token-classification model in ``model_dir`` (a ``BertCrfForTokenClassification`` or any
    ``*ForTokenClassification`` folder with its tokenizer) to ``onnx_path``.

    The file computes the emissions with dynamic batch and length; for a CRF model the effective CRF scores and the
    labels go into its metadata. The export is checked: ONNX Runtime must give PyTorch's logits within
    ``atol + rtol * |logit|`` (float32 rounding of fused kernels) on a batch whose size and length differ from the
    tracing example, else ``RuntimeError``. Returns the path.
    """
    import onnx
    import onnxruntime

    model_dir, onnx_path = Path(model_dir), Path(onnx_path)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    model = AutoModelForTokenClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    if getattr(model, "bilstm", None) is not None:
        # pack_padded_sequence needs the lengths as Python ints: torch.export cannot trace it.
        raise ValueError(f"{model_dir} has a BiLSTM (use_bilstm=True): its packed sequences cannot be exported to "
                         "ONNX; only encoder + linear emission models can")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    input_names = [name for name in INPUT_NAMES if name in tokenizer.model_input_names]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    example = _example_inputs(tokenizer, input_names, ["a b c", "a b c d e f g h"])
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Noise of the exporter itself: every input shares the two axes (so it names them once), and a deprecation
        # inside torch's own pytree code.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        torch.onnx.export(
            _Emissions(model, input_names).eval(), tuple(example.values()), str(onnx_path), dynamo=True,
            input_names=input_names, output_names=["logits"], opset_version=opset,
            dynamic_shapes=(tuple({0: batch, 1: length} for _ in input_names),), verbose=False,
            external_data=False,  # one self-contained file (BERT-family models stay under protobuf's 2 GB)
        )

    proto = onnx.load(str(onnx_path))
    metadata = {METADATA_LABELS: json.dumps(labels)}
    crf = getattr(model, "crf", None)
    if crf is not None:
        with torch.no_grad():
            start, transitions, end = (p.detach().float().tolist() for p in crf.effective_scores())
        metadata[METADATA_CRF] = json.dumps({"start": start, "transitions": transitions, "end": end})
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(onnx_path))

    # The check batch: another size and length than the tracing example, with padding.
    check = _example_inputs(tokenizer, input_names, ["a", "a b c d e f g h i j k l m n o p q r s t", "b c"])
    with torch.no_grad():
        expected = model(**check).logits.numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {name: value.numpy() for name, value in check.items()})
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("nan")
        raise RuntimeError(f"the ONNX export of {model_dir} does not reproduce PyTorch: logits {got.shape} vs "
                           f"{expected.shape}, largest difference {difference:.3g} (rtol {rtol}, atol {atol})")
    return onnx_path


# ---------------------------------------------------------------------------------------------------------------
# ONNX Runtime behind the predictor's model interface
# ---------------------------------------------------------------------------------------------------------------


class OnnxTokenClassifier:
    """An ONNX Runtime session that looks, to :class:`~hf_bert_tasks.ner.predictor.NerPredictor`, like a token
    classifier with a softmax head: ``model(**inputs).logits`` (torch tensors in and out, CPU).

    Args:
        session: an ``onnxruntime.InferenceSession`` of a file written by :func:`export_onnx`.
        config: the model's config (labels, tag scheme, window settings).
    """

    def __init__(self, session, config):
        self.session = session
        self.config = config
        self.input_names = [i.name for i in session.get_inputs()]
        self._device_probe = torch.empty(0)

    def eval(self):
        return self

    def parameters(self):
        # The predictor asks the first parameter where to put its inputs: ONNX Runtime takes them on the CPU.
        yield self._device_probe

    def __call__(self, **inputs: torch.Tensor) -> TokenClassifierOutput:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ValueError(f"the ONNX model needs input(s) {missing}; got {sorted(inputs)}")
        feed = {name: inputs[name].cpu().numpy().astype(np.int64, copy=False) for name in self.input_names}
        (logits,) = self.session.run(["logits"], feed)
        return TokenClassifierOutput(logits=torch.from_numpy(logits))


class OnnxCrfTokenClassifier(OnnxTokenClassifier):
    """:class:`OnnxTokenClassifier` plus the CRF's ``decode`` and ``tag_probabilities`` (same signatures and
    results as ``BertCrfForTokenClassification``'s), computed in numpy from the scores stored in the file.

    Args:
        crf_scores: ``(start (K,), transitions (K, K), end (K,))`` effective scores.
    """

    def __init__(self, session, config, crf_scores: tuple[np.ndarray, np.ndarray, np.ndarray]):
        super().__init__(session, config)
        self.start, self.transitions, self.end = (np.asarray(s, dtype=np.float64) for s in crf_scores)

    def _rows(self, logits: torch.Tensor, tag_mask: torch.Tensor):
        """Rows with labelled positions, their compacted emissions and masks."""
        tag_mask = tag_mask.bool().cpu().numpy()
        rows = np.flatnonzero(tag_mask.any(axis=1))
        index, mask = _compact(tag_mask[rows])
        gathered = np.take_along_axis(logits.detach().float().cpu().numpy()[rows], index[:, :, None], axis=1)
        return tag_mask, rows, index, mask, gathered

    def decode(self, logits: torch.Tensor, tag_mask: torch.Tensor) -> torch.Tensor:
        """Viterbi over the labelled positions: `(batch, seq_len)` long tag ids, -100 where `tag_mask` is False."""
        tag_mask, rows, index, mask, gathered = self._rows(logits, tag_mask)
        tags = np.full(tag_mask.shape, -100, dtype=np.int64)
        if len(rows):
            path = viterbi_decode(gathered, mask, self.start, self.transitions, self.end)
            # Both boolean selections walk row-major order, and the compaction kept each row's order.
            row_tags = tags[rows]
            row_tags[tag_mask[rows]] = path[mask]
            tags[rows] = row_tags
        return torch.from_numpy(tags)

    def tag_probabilities(self, logits: torch.Tensor, tag_mask: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Marginal probability of `tags` at each labelled position, `(batch, seq_len)` float32, 0 elsewhere."""
        tag_mask, rows, index, mask, gathered = self._rows(logits, tag_mask)
        probabilities = np.zeros(tag_mask.shape, dtype=np.float32)
        if len(rows):
            marginals = crf_marginals(gathered, mask, self.start, self.transitions, self.end)
            row_tags = np.take_along_axis(tags.cpu().numpy()[rows], index, axis=1)
            row_tags = np.where(mask, row_tags, 0)
            chosen = np.take_along_axis(marginals, row_tags[:, :, None], axis=2)[:, :, 0]
            row_probabilities = probabilities[rows]
            row_probabilities[tag_mask[rows]] = chosen[mask].clip(0.0, 1.0)
            probabilities[rows] = row_probabilities
        return torch.from_numpy(probabilities)


def load_onnx_token_classifier(onnx_path: PathLike, config, *, threads: int | None = None,
                               providers: Sequence[str] | None = None) -> OnnxTokenClassifier:
    """Open a file written by :func:`export_onnx` for the model whose config is ``config``.

    ``threads``: ONNX Runtime's intra-op threads (None: its default, one per physical core). Raises ``ValueError``
    when the file's labels are not the config's (the file and the folder come from different models).
    """
    import onnxruntime

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file {onnx_path} does not exist (write one with export_onnx)")
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=list(providers or ["CPUExecutionProvider"]))
    metadata = session.get_modelmeta().custom_metadata_map
    if METADATA_LABELS not in metadata:
        raise ValueError(f"{onnx_path} has no {METADATA_LABELS!r} metadata: it was not written by export_onnx")
    labels = json.loads(metadata[METADATA_LABELS])
    config_labels = [config.id2label[i] for i in range(config.num_labels)]
    if labels != config_labels:
        raise ValueError(f"{onnx_path} was exported from a model with labels {labels}, but the config has "
                         f"{config_labels}: the ONNX file and the model folder do not belong together")
    if METADATA_CRF in metadata:
        scores = json.loads(metadata[METADATA_CRF])
        return OnnxCrfTokenClassifier(session, config, (scores["start"], scores["transitions"], scores["end"]))
    return OnnxTokenClassifier(session, config)


class OnnxNerPredictor(NerPredictor):
    """:class:`~hf_bert_tasks.ner.predictor.NerPredictor` with the forward pass in ONNX Runtime (CPU).

    Args:
        onnx_path: a file written by :func:`export_onnx`.
        model_dir: the folder it was exported from (tokenizer, labels, tag scheme, window settings).
        threads: ONNX Runtime's intra-op threads (None: its default).
        providers: ONNX Runtime execution providers (default: CPU).
        **kwargs: as for ``NerPredictor`` (``batch_size``, ``max_length``, ``stride``, ...).

    ``predictor(text)``, ``predict_document`` and ``predict_words`` behave as ``NerPredictor``'s.
    """

    def __init__(self, onnx_path: PathLike, model_dir: PathLike, *, threads: int | None = None,
                 providers: Sequence[str] | None = None, **kwargs):
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
        model = load_onnx_token_classifier(onnx_path, config, threads=threads, providers=providers)
        super().__init__(model, tokenizer, **kwargs)
