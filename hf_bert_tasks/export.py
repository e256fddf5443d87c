"""ONNX export of a model of any of the three tasks (token classification, sequence classification, extractive QA),
and the predictors running it with ONNX Runtime.

What goes into the ONNX file
----------------------------
The encoder and the head: inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes
them), all ``(batch, length)`` int64; outputs the PyTorch model's, float32: ``logits`` ``(batch, length,
num_labels)`` for a token classifier (the CRF's emissions), ``logits`` ``(batch, num_labels)`` for a sequence
classifier, ``start_logits`` and ``end_logits`` ``(batch, length)`` for QA; batch and length are dynamic axes. The
task (:func:`~hf_bert_tasks.predictor.auto.task_of`), the label list and, for a CRF, its *effective* scores
(``LinearChainCRF.effective_scores``: forbidden moves at ``FORBIDDEN_SCORE``) are written into the file's metadata
(``metadata_props``), so the numbers of the model all live in one file; the folder the model came from still gives
the tokenizer and the window settings.

The global pointer model's file computes its span scores ``(batch, num_types, length, length)`` instead; the
masking of spans that do not start and end on words and the decoding of the spans above the threshold stay outside
(:class:`OnnxSpanClassifier`), as does the merging of windows.

What stays outside: the CRF's decoding. Viterbi and the marginals are loops over time of tiny (K, K) steps whose
length depends on the data; in a graph they would be ``Loop``/``Scan`` ops that runtimes handle poorly, while outside
they cost little next to the encoder. ONNX inference decodes with the package's own ``LinearChainCRF``, rebuilt from
the effective scores in the file (unconstrained: the forbidden moves are already at ``FORBIDDEN_SCORE`` in them, so
its paths and marginals are the original model's), through ``BertCrfForTokenClassification``'s own ``decode`` and
``tag_probabilities``: one CRF implementation for PyTorch and ONNX inference.

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript). The legacy TorchScript tracer
is not used: it bakes transformers' attention-mask branches in as constants, and on a random tiny BERT its logits
were 0.1-0.2 away from PyTorch's on other shapes, while the dynamo export agrees to 1e-7. Export checks itself:
ONNX Runtime must reproduce PyTorch's logits on a batch of another shape than the example it was traced with.

Predicting
----------
:class:`OnnxNerPredictor`, :class:`OnnxTextClassifier` and :class:`OnnxQuestionAnswerer` are the task's predictor
(``NerPredictor``, through it the custom pipeline of ``modeling/pipeline_bert_crf.py``; ``TextClassifier``;
``QuestionAnswerer``) whose model is an ONNX Runtime session: words, windows, merging, entities, labels and answer
search are the predictor's own code; only the forward pass differs. :class:`OnnxModel` gives the session the small
model interface the predictors use (``config``, ``device``, ``eval()``, ``__call__(**inputs)`` returning the
PyTorch model's output class, and ``decode``/``tag_probabilities`` for a CRF).

Command line: ``python -m hf_bert_tasks.export MODEL_DIR OUT_DIR`` writes ``OUT_DIR/model.onnx``, checks that ONNX
Runtime and PyTorch find the same entities (labels, answers) in sample text, and prints where it wrote (``--help``
for the options).

int8
----
``--quantize int8`` (:func:`quantize_int8`) replaces the file by its dynamic int8 quantization: the weights of the
operators in ``QUANTIZED_OPS`` (the matrix products and the embeddings) in int8 with a scale per output channel,
activations quantized batch by batch at run time (integer matrix products, VNNI on CPUs that have it), except the
products of the task's ``FLOAT_PRODUCTS``, which stay float32. The int8 model
cannot find exactly the float model's entities, so its parity is a bound: 1 - the F1 of its entities (labels,
answers) against PyTorch's in the sample texts at most ``INT8_MAX_DISAGREEMENT``, else the export refuses it, says the
measured disagreement and leaves the float32 file. A text has one label and a question one answer, so for those
tasks the disagreement is the share of sample texts (questions) whose label (answer span) differs: with the default
samples, one differing is over the bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OPSET = 18


def command_line() -> argparse.ArgumentParser:
    """The parser of ``python -m hf_bert_tasks.export``, defined above the heavy imports (see below)."""
    parser = argparse.ArgumentParser(
        prog="python -m hf_bert_tasks.export",
        description="Export a model folder (token classifier: BERT+CRF, global pointer or softmax head; sequence "
                    "classifier; extractive QA) to ONNX. Writes OUT_DIR/model.onnx (encoder and head; the task, the "
                    "labels and a CRF's scores in its metadata) and copies beside it what inference needs from "
                    "MODEL_DIR (config, tokenizer, custom code; not the weights), checks that ONNX Runtime reproduces "
                    "PyTorch's outputs and finds the same entities (labels, answers) in sample text, and prints where "
                    "it wrote and how to predict (OnnxNerPredictor, OnnxTextClassifier or OnnxQuestionAnswerer of "
                    "hf_bert_tasks.export).",
    )
    parser.add_argument("model_dir", help="a saved model folder (save_pretrained) with its tokenizer")
    parser.add_argument("out_dir", help="output folder (created; model.onnx and the files inference needs): new, "
                                        "empty or a previous export, never another model's folder")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="int8: dynamic quantization (int8 weights of the matrix products and embeddings, "
                             "activations quantized at run time); OUT_DIR/model.onnx is then the int8 file, refused "
                             "when its entities (labels, answers) in the sample text differ from PyTorch's by more "
                             "than 5%% (1 - F1)")
    parser.add_argument("--text", action="append", default=None,
                        help="sample text for the parity check (repeatable; default: four built-in texts in English "
                             "and Chinese, one of them several windows long); a QA model is asked three built-in "
                             "questions about each")
    return parser


if __name__ == "__main__":  # `--help` and argument errors answer before torch and transformers load (seconds)
    command_line().parse_args()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoTokenizer  # noqa: E402
from transformers.modeling_outputs import (  # noqa: E402
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .classification.predictor import TextClassifier  # noqa: E402
from .modeling import register_auto_classes  # noqa: E402
from .modeling.configuration_bert_crf import label_names  # noqa: E402
from .modeling.crf import LinearChainCRF  # noqa: E402
from .modeling.modeling_bert_crf import BertCrfForTokenClassification  # noqa: E402
from .modeling.modeling_bert_global_pointer import BertGlobalPointerForSpanClassification, span_mask  # noqa: E402
from .ner.predictor import NerPredictor  # noqa: E402
from .predictor.auto import load_model, predictor_class, task_of  # noqa: E402
from .qa.predictor import QuestionAnswerer  # noqa: E402

__all__ = [
    "DEFAULT_OPSET",
    "OnnxCrfTokenClassifier",
    "OnnxModel",
    "OnnxNerPredictor",
    "OnnxQuestionAnswerer",
    "OnnxSpanClassifier",
    "OnnxTextClassifier",
    "check_parity",
    "export_onnx",
    "float_products",
    "load_onnx_model",
    "main",
    "pytorch_findings",
    "quantize_int8",
]

# Dynamic int8 quantization (ONNX Runtime): which operators get int8 weights (per output channel), chosen by
# measurement on CoNLL-2003 dev (benchmarks/README.md, "Lower precision"); and how far the int8 file's entities in
# the parity texts may be from PyTorch's float32 ones (1 - entity F1) before export refuses it.
QUANTIZED_OPS = ("MatMul", "Gather")
# The matrix products that stay float32, per task, by measurement on SST-2 and SQuAD dev (benchmarks/README.md):
# NER holds its gate with every product in int8, but a text's label and an answer's span moved with the products
# whose inputs have the widest outliers: the first encoder layer's (their input is the embeddings' normalised sum)
# and the down-projections (the feed-forward outputs, whose input is the GELU's long tail; and the heads).
FLOAT_PRODUCTS = {"ner": (), "classification": ("first layer", "down-projections"),
                  "qa": ("first layer", "down-projections")}
INT8_MAX_DISAGREEMENT = 0.05

METADATA_TASK = "hf_bert_tasks.task"  # "ner", "classification" or "qa" (files without it: "ner", the first kind)
METADATA_LABELS = "hf_bert_tasks.labels"
METADATA_CRF = "hf_bert_tasks.crf"  # JSON {"start": (K,), "transitions": (K, K), "end": (K,)}, effective scores
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The PyTorch model's outputs that the file computes, and their class, per task.
OUTPUTS = {"ner": (TokenClassifierOutput, ("logits",)), "classification": (SequenceClassifierOutput, ("logits",)),
           "qa": (QuestionAnsweringModelOutput, ("start_logits", "end_logits"))}

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------


class _Outputs(torch.nn.Module):
    """The exported function: model inputs, positionally, to the named outputs."""

    def __init__(self, model, input_names: Sequence[str], output_names: Sequence[str]):
        super().__init__()
        self.model = model
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(output[name] for name in self.output_names)


def _example_inputs(tokenizer, input_names, texts) -> dict[str, torch.Tensor]:
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return {name: encoded[name] for name in input_names}


def export_onnx(model_dir: PathLike, onnx_path: PathLike, opset: int = DEFAULT_OPSET, *, rtol: float = 1e-3,
                atol: float = 1e-4) -> Path:
    """Export the model in ``model_dir`` (a token classifier: ``BertCrfForTokenClassification``, the global pointer
    or any ``*ForTokenClassification``; a ``*ForSequenceClassification``; a ``*ForQuestionAnswering``; with its
    tokenizer) to ``onnx_path``.

    The file computes the model's outputs (``OUTPUTS``) with dynamic batch and length; the task, the labels and a
    CRF's effective scores go into its metadata. The export is checked: ONNX Runtime must give PyTorch's outputs
    within ``atol + rtol * |output|`` (float32 rounding of fused kernels) on a batch whose size and length differ from
    the tracing example, else ``RuntimeError``. Returns the path.
    """
    import onnx
    import onnxruntime

    model_dir, onnx_path = Path(model_dir), Path(onnx_path)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {model_dir} does not exist")
    register_auto_classes()  # a CRF folder loads as this package's model
    task = task_of(AutoConfig.from_pretrained(model_dir, trust_remote_code=True))
    model = load_model(task, model_dir).eval()
    output_names = OUTPUTS[task][1]
    if getattr(model, "bilstm", None) is not None:
        # pack_padded_sequence needs the lengths as Python ints: torch.export cannot trace it.
        raise ValueError(f"{model_dir} has a BiLSTM (use_bilstm=True): its packed sequences cannot be exported to "
                         "ONNX; only encoder + linear emission models can")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    input_names = [name for name in INPUT_NAMES if name in tokenizer.model_input_names]
    labels = label_names(model.config)

    example = _example_inputs(tokenizer, input_names, ["a b c", "a b c d e f g h"])
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Noise of the exporter itself: every input shares the two axes (so it names them once), and a deprecation
        # inside torch's own pytree code.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        torch.onnx.export(
            _Outputs(model, input_names, output_names).eval(), tuple(example.values()), str(onnx_path), dynamo=True,
            input_names=input_names, output_names=list(output_names), opset_version=opset,
            dynamic_shapes=(tuple({0: batch, 1: length} for _ in input_names),), verbose=False,
            external_data=False,  # one self-contained file (BERT-family models stay under protobuf's 2 GB)
        )

    proto = onnx.load(str(onnx_path))
    metadata = {METADATA_TASK: task, METADATA_LABELS: json.dumps(labels)}
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
        output = model(**check)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(output_names), {name: value.numpy() for name, value in check.items()})
    for name, got in zip(output_names, outputs):
        expected = output[name].numpy()
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
            difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("nan")
            raise RuntimeError(f"the ONNX export of {model_dir} does not reproduce PyTorch: {name} {got.shape} vs "
                               f"{expected.shape}, largest difference {difference:.3g} (rtol {rtol}, atol {atol})")
    return onnx_path


def float_products(proto, groups: Sequence[str]) -> list[str]:
    """The names of the matrix products (MatMul with a weight matrix) of ``groups`` in an exported graph: "first
    layer", those before its third LayerNormalization (the embeddings' and the first layer's two), and
    "down-projections", those whose weight has more rows than columns."""
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer if len(init.dims) == 2}
    names, norms = [], 0
    for node in proto.graph.node:
        norms += node.op_type == "LayerNormalization"
        if node.op_type != "MatMul" or node.input[1] not in shapes:
            continue
        rows, columns = shapes[node.input[1]]
        if ("first layer" in groups and norms < 3) or ("down-projections" in groups and rows > columns):
            names.append(node.name)
    return names


def quantize_int8(onnx_path: PathLike, int8_path: PathLike, op_types: Sequence[str] | None = QUANTIZED_OPS,
                  per_channel: bool = True, keep_float: Sequence[str] | None = None) -> Path:
    """Write the dynamic int8 quantization of a file of :func:`export_onnx` (weights of ``op_types`` in int8, one
    scale per output channel or, without ``per_channel``, per matrix; None: every operator ONNX Runtime quantizes;
    the products of ``keep_float``, groups of :func:`float_products`, in float32, by default the file's task's
    ``FLOAT_PRODUCTS``; activations quantized batch by batch at run time; its labels and CRF scores kept) to
    ``int8_path``."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx.load(str(onnx_path), load_external_data=False)  # its metadata and weight shapes, not the weights
    metadata = {entry.key: entry.value for entry in source.metadata_props}
    if keep_float is None:
        keep_float = FLOAT_PRODUCTS[metadata.get(METADATA_TASK, "ner")]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph: these operators need no shape inference
    try:
        quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=None if op_types is None else list(op_types),
                         nodes_to_exclude=float_products(source, keep_float))
    finally:
        root.setLevel(level)
    proto = onnx.load(str(int8_path))
    kept = {entry.key for entry in proto.metadata_props}
    for key, value in metadata.items():
        if key not in kept:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, str(int8_path))
    return Path(int8_path)


# ---------------------------------------------------------------------------------------------------------------
# ONNX Runtime behind the predictor's model interface
# ---------------------------------------------------------------------------------------------------------------


class OnnxModel:
    """An ONNX Runtime session that looks, to the task's predictor (and the NER pipeline), like the PyTorch model it
    was exported from without a CRF: ``model(**inputs)`` gives that model's output class (``.logits``, or
    ``.start_logits`` and ``.end_logits``), torch tensors in and out, CPU.

    Args:
        session: an ``onnxruntime.InferenceSession`` of a file written by :func:`export_onnx`.
        config: the model's config (labels, tag scheme, window settings).
        task: ``"ner"``, ``"classification"`` or ``"qa"`` (``OUTPUTS``).
    """

    device = torch.device("cpu")  # ONNX Runtime takes and gives host memory; the predictors put inputs here

    def __init__(self, session, config, task: str = "ner"):
        self.session = session
        self.config = config
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_class, self.output_names = OUTPUTS[task]

    def eval(self):
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ValueError(f"the ONNX model runs in ONNX Runtime on the CPU, not on {device}")
        return self

    def __call__(self, **inputs: torch.Tensor):
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ValueError(f"the ONNX model needs input(s) {missing}; got {sorted(inputs)}")
        feed = {name: inputs[name].cpu().numpy().astype(np.int64, copy=False) for name in self.input_names}
        outputs = self.session.run(list(self.output_names), feed)
        return self.output_class(**{name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)})


class OnnxCrfTokenClassifier(OnnxModel):
    """:class:`OnnxModel` of a token classifier plus the CRF: ``decode`` and ``tag_probabilities`` are
    ``BertCrfForTokenClassification``'s own methods (they need only ``crf`` and ``num_labels``), running a
    ``LinearChainCRF`` whose scores are the effective scores stored in the file.

    Args:
        crf_scores: ``(start (K,), transitions (K, K), end (K,))`` effective scores.
    """

    decode = BertCrfForTokenClassification.decode
    tag_probabilities = BertCrfForTokenClassification.tag_probabilities
    _path_probabilities = BertCrfForTokenClassification._path_probabilities

    def __init__(self, session, config, crf_scores):
        super().__init__(session, config)
        start, transitions, end = (torch.tensor(s, dtype=torch.float32) for s in crf_scores)
        self.num_labels = len(start)
        # Unconstrained: forbidden moves are already at FORBIDDEN_SCORE in the effective scores, so this CRF's
        # effective scores are exactly the original's.
        self.crf = LinearChainCRF(self.num_labels)
        with torch.no_grad():
            self.crf.start_transitions.copy_(start)
            self.crf.transitions.copy_(transitions)
            self.crf.end_transitions.copy_(end)
        self.crf.eval()


class OnnxSpanClassifier(OnnxModel):
    """:class:`OnnxModel` for the global pointer model: the file computes the span scores ``(batch,
    num_types, length, length)`` masked by ``attention_mask`` only; here, outside the graph, the spans whose start or
    end is no word (``tag_mask``) are masked and the spans above the threshold are decoded, by
    ``BertGlobalPointerForSpanClassification``'s own ``decode``, and its own pipeline merges the windows."""

    decode = BertGlobalPointerForSpanClassification.decode
    pipeline_class = staticmethod(BertGlobalPointerForSpanClassification.pipeline_class)

    def __call__(self, tag_mask: torch.Tensor | None = None, **inputs: torch.Tensor) -> TokenClassifierOutput:
        output = super().__call__(**inputs)
        if tag_mask is not None:
            output.logits.masked_fill_(~span_mask(tag_mask.bool()), -1e4)
        return output


def load_onnx_model(onnx_path: PathLike, config, *, threads: int | None = None,
                    providers: Sequence[str] | None = None) -> OnnxModel:
    """Open a file written by :func:`export_onnx` for the model whose config is ``config``.

    ``threads``: ONNX Runtime's intra-op threads (None: its default, one per physical core). Raises ``ValueError``
    when the file's task or labels are not the config's (the file and the folder come from different models).
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
    task, labels = metadata.get(METADATA_TASK, "ner"), json.loads(metadata[METADATA_LABELS])
    config_task, config_labels = task_of(config), label_names(config)
    if (task, labels) != (config_task, config_labels):
        raise ValueError(f"{onnx_path} was exported from a {task} model with labels {labels}, but the config is a "
                         f"{config_task} model's with {config_labels}: the ONNX file and the model folder do not "
                         "belong together")
    if getattr(config, "model_type", None) == "bert_global_pointer":
        return OnnxSpanClassifier(session, config)
    if METADATA_CRF in metadata:
        scores = json.loads(metadata[METADATA_CRF])
        return OnnxCrfTokenClassifier(session, config, (scores["start"], scores["transitions"], scores["end"]))
    return OnnxModel(session, config, task)


class _OnnxForwardPass:
    """The constructor of the ONNX predictors: the task's predictor, given an :class:`OnnxModel` for its model.

    Args:
        onnx_path: a file written by :func:`export_onnx`.
        model_dir: the folder it was exported from (tokenizer, labels, tag scheme, window settings).
        threads: ONNX Runtime's intra-op threads (None: its default).
        providers: ONNX Runtime execution providers (default: CPU).
        **kwargs: as for the task's predictor (``batch_size``, window settings, ...).
    """

    def __init__(self, onnx_path: PathLike, model_dir: PathLike, *, threads: int | None = None,
                 providers: Sequence[str] | None = None, **kwargs):
        register_auto_classes()  # a CRF folder's config is this package's class
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
        model = load_onnx_model(onnx_path, config, threads=threads, providers=providers)
        super().__init__(model, tokenizer, **kwargs)


class OnnxNerPredictor(_OnnxForwardPass, NerPredictor):
    """:class:`~hf_bert_tasks.ner.predictor.NerPredictor` with the forward pass in ONNX Runtime (CPU): ``(onnx_path,
    model_dir, *, threads=None, providers=None, **kwargs)`` (see ``_OnnxForwardPass``); ``predictor(text)``,
    ``predict_document`` and ``predict_words`` behave as ``NerPredictor``'s."""


class OnnxTextClassifier(_OnnxForwardPass, TextClassifier):
    """:class:`~hf_bert_tasks.classification.predictor.TextClassifier` with the forward pass in ONNX Runtime (CPU);
    arguments as :class:`OnnxNerPredictor`'s."""


class OnnxQuestionAnswerer(_OnnxForwardPass, QuestionAnswerer):
    """:class:`~hf_bert_tasks.qa.predictor.QuestionAnswerer` with the forward pass in ONNX Runtime (CPU); arguments
    as :class:`OnnxNerPredictor`'s."""


ONNX_PREDICTORS = {"ner": OnnxNerPredictor, "classification": OnnxTextClassifier, "qa": OnnxQuestionAnswerer}


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------

SAMPLE_TEXTS = (
    "Angela Weber, chief executive of Northwind Bank, flew from Dublin to Toronto on Monday.",
    "The Riverside Harriers beat Porto Alegre United in the Atlantic Cup final.",
    "明朝建立于1368年，开国皇帝是朱元璋。",
    # several windows of any encoder: the windowing and merging are checked too
    " ".join(["Reuters said the European Commission met officials of Siemens in Berlin and Tokyo."] * 30),
)


# Asked of every sample text of a QA model's parity check.
QA_QUESTIONS = ("Who is named?", "Where did it happen?", "When did it happen?")
FOUND = {"ner": "entities", "classification": "labels", "qa": "answers"}


def _found(task: str, predictor, texts: Sequence[str]) -> tuple[list[str], list[list[tuple]]]:
    """The samples (texts; for QA, "question | text") and per sample what ``predictor`` found in it: ``(key,
    scores)`` pairs, key ``(type, start, end)`` of an entity, the label, or ``(start, end)`` of the answer."""
    texts = list(texts)
    if task == "ner":
        return texts, [[((e["type"], e["start"], e["end"]), [e["score"]]) for e in found] for found in predictor(texts)]
    if task == "classification":
        return texts, [[] if record is None else [(repr(record["label"]), list(record["probabilities"].values()))]
                       for record in predictor(texts)]
    questions = [question for _ in texts for question in QA_QUESTIONS]
    contexts = [text for text in texts for _ in QA_QUESTIONS]
    answers = predictor(questions, contexts)
    return ([f"{q} | {c}" for q, c in zip(questions, contexts)],
            [[((answer["start"], answer["end"]), [answer["score"]])] for answer in answers])


def pytorch_findings(model_dir: PathLike, texts: Sequence[str] = SAMPLE_TEXTS) -> tuple[str, list[str], list]:
    """``(task, samples, findings)`` of the task's PyTorch predictor on ``model_dir`` in ``texts`` (see
    :func:`_found`): the reference of :func:`check_parity`, computed once for several ONNX files of one model."""
    register_auto_classes()
    task = task_of(AutoConfig.from_pretrained(model_dir, trust_remote_code=True))
    return (task, *_found(task, predictor_class(task).from_pretrained(str(model_dir)), texts))


def check_parity(model_dir: PathLike, onnx_path: PathLike, onnx_dir: PathLike | None = None,
                 texts: Sequence[str] = SAMPLE_TEXTS, reference: tuple | None = None) -> dict:
    """What PyTorch (the task's predictor on ``model_dir``; or ``reference``, :func:`pytorch_findings` of the same
    texts) and ONNX Runtime (its ONNX predictor on ``onnx_path`` with the config and tokenizer of ``onnx_dir``,
    default ``model_dir``) find in ``texts``: entities, the label, or the answers to ``QA_QUESTIONS``.

    Returns ``{"task", "texts" (samples: texts, or questions for QA), "found" (what PyTorch found), "mismatches"
    (samples whose findings differ), "max_score_difference" (over the samples that agree; probabilities of every
    label for a classifier), "disagreement" (1 - the micro F1 of ONNX's findings against PyTorch's)}``."""
    task, samples, reference = reference or pytorch_findings(model_dir, texts)
    _, got = _found(task, ONNX_PREDICTORS[task](onnx_path, onnx_dir or model_dir), texts)
    mismatches, difference, shared = [], 0.0, 0
    for sample, want, have in zip(samples, reference, got):
        want_keys, have_keys = [key for key, _ in want], [key for key, _ in have]
        shared += len(set(want_keys) & set(have_keys))
        if want_keys != have_keys:
            mismatches.append(sample)
        else:
            difference = max([difference] + [abs(a - b) for (_, s), (_, t) in zip(want, have) for a, b in zip(s, t)])
    found = sum(map(len, reference)) + sum(map(len, got))
    return {"task": task, "texts": len(samples), "found": sum(map(len, reference)), "mismatches": mismatches,
            "max_score_difference": difference, "disagreement": 1 - 2 * shared / found if found else 0.0}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def export_folder_problem(out_dir: Path) -> str | None:
    """Why ``out_dir`` must not receive an export (its files would be overwritten), or None: it may be absent,
    empty, or a previous export (``model.onnx`` and no weights). Another model's folder is refused: its config,
    tokenizer and results would be replaced and it would no longer load."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return f"OUT_DIR {out_dir} is a file, not a folder"
    names = sorted(path.name for path in out_dir.iterdir())
    weights = [name for name in names if name.endswith(WEIGHT_SUFFIXES)]
    if not names or ("model.onnx" in names and not weights):
        return None
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return (f"OUT_DIR {out_dir} is not empty and holds no previous export ({shown}); writing there would overwrite "
            f"{'a model' if weights else 'its files'}. Choose a new or empty folder")


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_line()
    args = parser.parse_args(argv)
    from .progress import quiet_short_bars

    quiet_short_bars()  # the loading bars of the three loads would bury the report

    model_dir, out_dir = Path(args.model_dir), Path(args.out_dir)
    if not (model_dir / "config.json").is_file():
        parser.error(f"{model_dir} is not a model folder: {model_dir / 'config.json'} not found")
    if out_dir.resolve() == model_dir.resolve():
        parser.error("OUT_DIR must differ from MODEL_DIR")
    problem = export_folder_problem(out_dir)
    if problem:
        parser.error(problem)
    onnx_path = export_onnx(model_dir, out_dir / "model.onnx", opset=args.opset)
    for path in model_dir.iterdir():
        if path.is_file() and not path.name.endswith((*WEIGHT_SUFFIXES, ".onnx")):
            shutil.copy2(path, out_dir / path.name)
    texts = args.text or SAMPLE_TEXTS
    reference = pytorch_findings(model_dir, texts)  # for the float32 file and the int8 one
    parity = check_parity(model_dir, onnx_path, out_dir, texts, reference)
    found, samples = FOUND[parity["task"]], "sample questions" if parity["task"] == "qa" else "sample texts"
    if parity["mismatches"]:
        print(f"error: ONNX Runtime and PyTorch found different {found} in {len(parity['mismatches'])} of "
              f"{parity['texts']} {samples}, e.g. {parity['mismatches'][0][:80]!r}", file=sys.stderr)
        return 1
    parity_line = (f"parity: ONNX Runtime and PyTorch find the same {parity['found']} {found} in {parity['texts']} "
                   f"{samples} (largest score difference {parity['max_score_difference']:.2g})")
    if args.quantize == "int8":
        int8_path = quantize_int8(onnx_path, out_dir / "model.int8.onnx")
        int8 = check_parity(model_dir, int8_path, out_dir, texts, reference)
        if int8["disagreement"] > INT8_MAX_DISAGREEMENT:
            int8_path.unlink()
            print(f"error: the int8 model's {found} in the {int8['texts']} {samples} differ from PyTorch's by "
                  f"{100 * int8['disagreement']:.1f}% (1 - F1; {len(int8['mismatches'])} {samples} differ), over "
                  f"the {100 * INT8_MAX_DISAGREEMENT:.0f}% allowed: int8 refused; {onnx_path} is the float32 export",
                  file=sys.stderr)
            return 1
        os.replace(int8_path, onnx_path)
        parity_line += (f"; int8: {100 * int8['disagreement']:.1f}% of the {found} differ (at most "
                        f"{100 * INT8_MAX_DISAGREEMENT:.0f}% allowed), {len(int8['mismatches'])} {samples} differ")
    size = onnx_path.stat().st_size / 2**20
    kind = "int8 " if args.quantize else ""
    print(f"wrote {kind}{onnx_path} ({size:.1f} MiB) and the config, tokenizer and code beside it in {out_dir}")
    print(parity_line)
    name = ONNX_PREDICTORS[parity["task"]].__name__
    arguments = "question, context" if parity["task"] == "qa" else "text"
    print(f"predict: from hf_bert_tasks.export import {name}; "
          f"{name}({str(onnx_path)!r}, {str(out_dir)!r})({arguments})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
