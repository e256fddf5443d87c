"""Knowledge distillation (the TinyBERT step): a trained teacher of ours taught to a smaller student.

The teacher is a saved model of this project: a BERT-CRF tagger (`BertCrfForTokenClassification`) or a text
classifier (`AutoModelForSequenceClassification`). The student is the same kind of model, saved as an ordinary
model of ours (custom code, config, tokenizer), so it loads, predicts and pushes like any other.

Decisions
---------
- **Which layers the student keeps** (`--student_layers N`): evenly spaced, the top layer always kept. Student
  layer m (1-based, m = 1..N) is initialised from teacher layer g(m) = floor(m * L / N) of the L teacher layers
  (TinyBERT's uniform mapping, g(N) = L). With L = 6: N = 3 keeps layers 2, 4, 6; N = 2 keeps 3, 6; N = 4 keeps
  1, 3, 4, 6. Since L / N >= 1 the layers are distinct. Embeddings, the emission layer (or classifier, with the
  pooler), the BiLSTM and the CRF are copied from the teacher. The same mapping pairs student and teacher layers in
  the intermediate losses (hidden state m with teacher hidden state g(m), the embeddings with the embeddings); a
  `--student_name_or_path` student is paired by the same rule.
- **Tokenizer**: the student uses the teacher's tokenizer (and saves it). Soft targets and attention maps are
  matched position by position, so a `--student_name_or_path` folder with a tokenizer of another vocabulary is
  refused.
- **Losses**, each weighted (weight 0 switches it off), summed:

  ``soft``: CRF teacher: the cross-entropy of the student's path distribution against the teacher's, both at
  temperature T (all CRF scores divided by T), times T**2. For a linear-chain CRF this needs only the teacher's
  marginals: ``log Z_S - E_q[score_S]``, where the expectation is over the teacher's token marginals (emissions,
  start, end) and pairwise marginals (transitions). Its gradient with respect to the student's emissions is
  ``T * (student marginals - teacher marginals)``: the marginals are the soft targets. Classifier teacher: Hinton's
  ``T**2 * KL(softmax(t / T) || softmax(s / T))`` (multi-label: the binary KL of each label's sigmoid).
  ``hard`` (CRF only): the student's CRF negative log-likelihood of the teacher's Viterbi path.
  ``gold``: the student's own loss on the gold labels (rows of transfer text have none and are skipped).
  ``hidden``: TinyBERT's hidden-state loss, the mean squared error between the student's hidden states (through a
  learned linear projection, shared by all layers, when the widths differ) and the paired teacher states, over
  real tokens, averaged over the pairs (embeddings included).
  ``attention``: the mean squared error between paired attention maps (the softmax probabilities transformers
  returns), over real query tokens; heads are compared one to one, or averaged first when the counts differ.

- **Defaults**: soft 1, gold 1, hard 0, hidden 0, attention 0. With soft and gold at 1 the CRF student's
  emission gradient points at the average of the teacher's marginals and the gold tags. Temperature 1 for a CRF
  teacher (its marginals are already soft where it is unsure: the exact posterior) and 2 for a classifier.
  `--soft_weight 0` (and no other teacher loss) is plain fine-tuning of the student: the baseline
  "fine-tuned directly from the teacher's layers"; the teacher is then not run at all.
- **Transfer text** (`--transfer_file`) is added to the training set without gold labels: the teacher labels it on
  the fly (its marginals, Viterbi paths or logits in every batch), so users can distil on more text than they
  annotated. NER: raw text (one sentence per line, a blank line between documents; words split as the predictor
  splits them) or the tokens of any NER file (its tags are ignored). Classification: one text per line.
- **Augmentation** (`--augment_mentions P`, NER): TinyBERT enlarges the task data before distilling; for NER the
  rule that keeps a sentence well-formed is mention replacement. Each pass copies every labelled training sentence
  that has entities, each mention replaced by a mention of the same type drawn at random (seeded by `--seed`) from
  all mentions of the training set; the copies join the transfer text (no gold: the teacher labels them). A
  sentence of names alone changes its names; one without entities is not copied (it would be a duplicate).
- The learned projection is not part of the student and is not saved; training resumed from a checkpoint starts
  it anew. With several processes its gradients are averaged before each optimizer step.
"""

from __future__ import annotations

import copy
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainerCallback
from transformers.utils import ModelOutput

from .modeling.configuration_bert_crf import label_names
from .modeling.crf import crf_log_partition
from .modeling.modeling_bert_crf import labelled_emissions
from .recipe import OrderedEvalTrainer, build_optimizer

# ---------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------

TRANSFER_FORMATS = ("text", "auto", "conll", "char", "jsonl", "cluener")


@dataclass
class DistillationArguments:
    """Teacher, student, losses and transfer text of `recipes/distill.py` (the decisions: module docstring)."""

    teacher_name_or_path: str = field(metadata={
        "help": "The teacher: a saved BERT-CRF NER model or a text classifier of this project (folder or Hub id)."})
    student_layers: int | None = field(default=None, metadata={
        "help": "Student = N evenly spaced layers of the teacher's encoder (layer m from teacher layer "
                "floor(m*L/N), the top layer kept), initialised from the teacher with the new layers and CRF "
                "copied."})
    student_name_or_path: str | None = field(default=None, metadata={
        "help": "Or: any encoder folder (weights loaded), a folder with only config.json or a config.json file "
                "(random initialisation), or a saved model of the teacher's kind. Must share the teacher's "
                "tokenizer."})
    temperature: float | None = field(default=None, metadata={
        "help": "Temperature T of the soft targets (the loss is scaled by T**2); default 1 for a CRF teacher, "
                "2 for a classifier."})
    soft_weight: float = field(default=1.0, metadata={
        "help": "Weight of the soft targets: CRF marginals (path cross-entropy) or the classifier's softened "
                "logits (KL). 0 with the other teacher losses at 0: plain fine-tuning of the student."})
    hard_weight: float = field(default=0.0, metadata={
        "help": "Weight of the teacher's Viterbi paths as hard targets (CRF teacher)."})
    gold_weight: float = field(default=1.0, metadata={"help": "Weight of the gold labels' loss."})
    hidden_weight: float = field(default=0.0, metadata={
        "help": "Weight of TinyBERT's hidden-state MSE (through a learned projection when the widths differ)."})
    attention_weight: float = field(default=0.0, metadata={
        "help": "Weight of the attention-map MSE (eager attention is used for both models when > 0)."})
    transfer_file: str | None = field(default=None, metadata={
        "help": "Unlabelled text the teacher labels, added to the training set: raw text (NER: a sentence per "
                "line, blank line between documents; classification: a text per line) or an NER file (tags "
                "ignored)."})
    transfer_format: str = field(default="text", metadata={
        "help": f"Format of --transfer_file: {', '.join(TRANSFER_FORMATS)} (auto: guessed like the NER readers)."})
    max_transfer_samples: int | None = field(default=None, metadata={
        "help": "Use only the first N sentences or texts of --transfer_file."})
    augment_mentions: int = field(default=0, metadata={
        "help": "NER: P passes of mention-swapped copies of the labelled training sentences (each mention replaced "
                "by a random one of the same type), added as transfer text that the teacher labels."})

    def __post_init__(self):
        if (self.student_layers is None) == (self.student_name_or_path is None):
            raise ValueError("give exactly one of --student_layers N and --student_name_or_path PATH")
        if self.student_layers is not None and self.student_layers < 1:
            raise ValueError(f"--student_layers must be at least 1, got {self.student_layers}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"--temperature must be positive, got {self.temperature}")
        for name in ("soft_weight", "hard_weight", "gold_weight", "hidden_weight", "attention_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.augment_mentions < 0:
            raise ValueError(f"--augment_mentions must be >= 0, got {self.augment_mentions}")
        if self.transfer_format not in TRANSFER_FORMATS:
            raise ValueError(f"--transfer_format must be one of {', '.join(TRANSFER_FORMATS)}, "
                             f"got {self.transfer_format!r}")

    @property
    def uses_teacher(self) -> bool:
        return any(w > 0 for w in (self.soft_weight, self.hard_weight, self.hidden_weight, self.attention_weight))

    def settings(self, task: str) -> dict:
        """What a model card lists about the distillation."""
        return {"teacher": self.teacher_name_or_path, "student_layers": self.student_layers,
                "student_name_or_path": self.student_name_or_path,
                "temperature": resolved_temperature(self.temperature, task),
                "soft_weight": self.soft_weight, "hard_weight": self.hard_weight if task == "ner" else None,
                "gold_weight": self.gold_weight, "hidden_weight": self.hidden_weight,
                "attention_weight": self.attention_weight,
                "transfer_file": Path(self.transfer_file).name if self.transfer_file else None,
                "augment_mentions": self.augment_mentions if task == "ner" else None}


def resolved_temperature(temperature: float | None, task: str) -> float:
    """The temperature in use: the one given, else 1 for a CRF tagger ("ner") and 2 for a classifier."""
    if temperature is not None:
        return temperature
    return 1.0 if task == "ner" else 2.0


# ---------------------------------------------------------------------------------------------------------------
# The student: layer selection and construction
# ---------------------------------------------------------------------------------------------------------------

LAYER_KEY = re.compile(r"\.layer\.(\d+)\.")


def evenly_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """0-based teacher layer behind each student layer: student layer m (1-based) <- teacher layer
    floor(m * L / N) (1-based). The top layer is always kept and the layers are distinct.

    >>> evenly_spaced_layers(6, 3), evenly_spaced_layers(6, 2), evenly_spaced_layers(12, 4)
    ([1, 3, 5], [2, 5], [2, 5, 8, 11])
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student of {student_layers} layers cannot be taken from a teacher of {teacher_layers} "
                         f"layers (1 <= N <= {teacher_layers})")
    return [m * teacher_layers // student_layers - 1 for m in range(1, student_layers + 1)]


def encoder_config(config):
    """The encoder's config: the nested `encoder` of a BERT-CRF config, else the config itself."""
    return config.encoder if getattr(config, "model_type", None) == "bert_crf" else config


def _layer_count_key(config) -> str:
    for key in ("num_hidden_layers", "n_layers"):  # DistilBERT says n_layers
        if isinstance(getattr(config, key, None), int):
            return key
    raise ValueError(f"cannot tell the number of layers of a {config.model_type} encoder (no num_hidden_layers)")


def num_layers(model) -> int:
    config = encoder_config(model.config)
    return getattr(config, _layer_count_key(config))


def student_from_teacher(teacher, student_layers: int):
    """A copy of `teacher` with `student_layers` of its encoder layers (:func:`evenly_spaced_layers`), every other
    weight (embeddings, pooler, emission layer or classifier, BiLSTM, CRF) copied. Returns (student, layer map)."""
    config = copy.deepcopy(teacher.config)
    inner = encoder_config(config)
    key = _layer_count_key(inner)
    chosen = evenly_spaced_layers(getattr(inner, key), student_layers)
    setattr(inner, key, student_layers)
    student = type(teacher)(config)
    source = teacher.state_dict()
    mapped = {}
    for name in student.state_dict():
        match = LAYER_KEY.search(name)
        origin = name if match is None else (
            f"{name[:match.start()]}.layer.{chosen[int(match.group(1))]}.{name[match.end():]}")
        if origin not in source:
            raise ValueError(f"student weight {name} has no teacher weight {origin} to copy")
        mapped[name] = source[origin].clone()
    student.load_state_dict(mapped, strict=True)
    return student, chosen


def load_teacher(path: str):
    """(teacher, tokenizer, task): a BERT-CRF tagger ("ner") or a sequence classifier ("classification")."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    from .modeling import register_auto_classes

    register_auto_classes()  # a CRF teacher loads as this package's model
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    if config.model_type == "bert_crf":
        return AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True), tokenizer, "ner"
    if any(name.endswith("ForSequenceClassification") for name in config.architectures or []):
        return AutoModelForSequenceClassification.from_pretrained(path), tokenizer, "classification"
    raise ValueError(f"teacher {path} is neither a BERT-CRF tagger (model_type bert_crf) nor a sequence classifier "
                     f"(architectures {config.architectures}): train one with recipes/ner.py or recipes/classify.py")


def student_from_path(path: str, teacher, teacher_tokenizer):
    """A student from `--student_name_or_path`: a saved model of the teacher's kind as it is; an encoder folder
    with weights (loaded) or only a config (a folder or a config.json file: random weights) under new layers. A
    CRF student gets the teacher's settings (scheme, windows, BiLSTM) and a copy of its CRF (same labels), and
    its emission layer when the widths agree; a classifier student gets the teacher's labels and long-text
    settings. Raises ValueError when the student's tokenizer has another vocabulary than the teacher's."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from .modeling.configuration_bert_crf import BertCrfConfig
    from .modeling.modeling_bert_crf import BertCrfForTokenClassification

    folder = Path(path)
    if folder.is_dir() and ((folder / "tokenizer.json").exists() or any(folder.glob("vocab.*"))):
        vocabulary = AutoTokenizer.from_pretrained(path, trust_remote_code=True).get_vocab()
        if vocabulary != teacher_tokenizer.get_vocab():
            raise ValueError(f"the student {path} has another tokenizer vocabulary than the teacher: soft targets "
                             "and attention maps are matched token by token, so the student must use the teacher's")
    # A Hub id or a folder with weights is loaded; a folder with only config.json, or the file, is a fresh model.
    weights = not folder.exists() or (folder.is_dir() and (any(folder.glob("*.safetensors"))
                                                  or any(folder.glob("*.bin"))))
    config = AutoConfig.from_pretrained(str(folder.parent) if folder.is_file() else path, trust_remote_code=True)
    labels = label_names(teacher.config)
    if getattr(teacher.config, "model_type", None) == "bert_crf":
        if config.model_type == "bert_crf":
            if label_names(config) != labels:
                raise ValueError(f"the student {path} tags {list(config.id2label.values())}, the teacher {labels}")
            student = type(teacher).from_pretrained(path)
        else:
            settings = {key: getattr(teacher.config, key) for key in (
                "use_bilstm", "lstm_hidden_size", "lstm_layers", "classifier_dropout", "tag_scheme",
                "constrain_transitions", "label_strategy", "max_seq_length", "stride", "context_window")}
            if weights:
                student = BertCrfForTokenClassification.from_encoder(path, labels, **settings)
            else:
                student = BertCrfForTokenClassification(BertCrfConfig(
                    encoder=config, id2label=dict(enumerate(labels)),
                    label2id={label: i for i, label in enumerate(labels)}, **settings))
            student.crf.load_state_dict(teacher.crf.state_dict())
            for name in ("classifier", "bilstm"):
                mine, theirs = getattr(student, name), getattr(teacher, name)
                if mine is not None and all(a.shape == b.shape for a, b in zip(
                        mine.state_dict().values(), theirs.state_dict().values())):
                    mine.load_state_dict(theirs.state_dict())
        return student
    keep = {key: getattr(teacher.config, key) for key in (
        "problem_type", "long_text", "max_seq_length", "stride", "head_tokens", "classification_threshold")
        if getattr(teacher.config, key, None) is not None}
    new_head = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={label: i for i, label in enumerate(labels)}, **keep)
    if weights:
        student = AutoModelForSequenceClassification.from_pretrained(path, ignore_mismatched_sizes=True, **new_head)
    else:
        for key, value in new_head.items():
            setattr(config, key, value)
        student = AutoModelForSequenceClassification.from_config(config)
    for key, value in keep.items():
        setattr(student.config, key, value)
    return student


def use_eager_attention(model) -> None:
    """Attention maps need the eager implementation (sdpa returns none)."""
    model.base_model.set_attn_implementation("eager")


# ---------------------------------------------------------------------------------------------------------------
# Transfer text
# ---------------------------------------------------------------------------------------------------------------


def read_transfer_sentences(path: str, format: str = "text", limit: int | None = None):
    """Word lists and document ids of NER transfer text. `text`: one sentence per non-blank line, words split as
    `NerPredictor` splits raw text, a blank line ends a document; an NER format (`auto`, `conll`, `char`,
    `jsonl`, `cluener`): the file's tokens and documents, its tags ignored. Returns (sentences, document_ids)."""
    from .modeling.tagging import split_words
    from .ner import data as ner_data
    from .pretraining.data import text_lines

    if format == "text":
        sentences, documents, document = [], [], 0
        for line in text_lines(path, error=ner_data.NerDataError):
            if not line.strip():
                document += 1
                continue
            words = [word for word, _, _ in split_words(line)]
            if words:
                sentences.append(words)
                documents.append(f"transfer-{document}")
    else:
        if format == "auto":
            format = ner_data.detect_format(path)
        readers = {"conll": ner_data.read_conll, "char": ner_data.read_char_bio, "jsonl": ner_data.read_jsonl,
                   "cluener": ner_data.read_cluener}
        if format not in readers:
            raise ValueError(f"transfer format {format!r} is not one of text, auto, {', '.join(readers)}")
        dataset = readers[format](path)
        sentences = dataset["tokens"]
        documents = dataset["document_id"] if "document_id" in dataset.column_names else ["transfer"] * len(sentences)
    if not sentences:
        raise ValueError(f"transfer file {path} holds no words")
    if limit is not None:
        sentences, documents = sentences[:limit], documents[:limit]
    return sentences, documents


def mention_swap_sentences(tokens: list[list[str]], tags: list[list[str]], scheme: str,
                           document_ids: list | None = None, passes: int = 1,
                           seed: int = 0) -> tuple[list[list[str]], list[str]]:
    """Mention-swapped copies of labelled sentences (`--augment_mentions`; the rule: module docstring).

    Args:
        tokens, tags: the sentences' words and their tags in `scheme` (valid sequences).
        document_ids: each sentence's document (default: one document); a pass keeps them, as documents of its own.
        passes: copies of each sentence that has entities.
        seed: of the draws; the same arguments give the same sentences.
    Returns:
        (word lists, document ids `"augment-{pass}-{document}"`), pass by pass in the order of the input.
    """
    import random

    from .modeling.tagging import tags_to_spans

    spans = [tags_to_spans(sentence_tags, scheme) for sentence_tags in tags]
    mentions = {}
    for words, sentence_spans in zip(tokens, spans):
        for span in sentence_spans:
            mentions.setdefault(span.type, []).append(words[span.start:span.end])
    with_entities = [index for index, sentence_spans in enumerate(spans) if sentence_spans]
    if passes and not with_entities:
        raise ValueError("the training sentences hold no entity mentions to swap (--augment_mentions)")
    rng = random.Random(seed)
    sentences, documents = [], []
    for copy_index in range(passes):
        for index in with_entities:
            words, position = [], 0
            for span in spans[index]:
                words += tokens[index][position:span.start] + rng.choice(mentions[span.type])
                position = span.end
            sentences.append(words + tokens[index][position:])
            documents.append(f"augment-{copy_index}-{'' if document_ids is None else document_ids[index]}")
    return sentences, documents


def read_transfer_texts(path: str, limit: int | None = None) -> list[str]:
    """Classification transfer text: one text per non-blank line."""
    from .classification.data import ClassificationDataError
    from .pretraining.data import text_lines

    texts = [line.strip() for line in text_lines(path, error=ClassificationDataError) if line.strip()]
    if not texts:
        raise ValueError(f"transfer file {path} holds no text")
    return texts[:limit] if limit is not None else texts


# ---------------------------------------------------------------------------------------------------------------
# CRF: marginals and the soft-target loss (on the CRF's own log-partition kernels)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CrfMarginals:
    """Marginals of a CRF's path distribution over a batch: `tokens` `(batch, length, K)` p(y_t = k), 0 at padded
    positions; `moves` `(K, K)` the expected number of moves i -> j, summed over the rows and steps (all that a loss
    averaged over the batch needs, since the transition scores are shared)."""

    tokens: torch.Tensor
    moves: torch.Tensor


def crf_soft_target_loss(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor,
                         end: torch.Tensor, targets: CrfMarginals, temperature: float = 1.0) -> torch.Tensor:
    """`T**2 * H(q, p_S)`, mean over rows: the cross-entropy of the student's path distribution p_S (scores / T)
    against a teacher's q given by its marginals on the same rows (computed at the same temperature). Per row
    ``log Z_S - sum_t sum_k q_t(k) E_t(k) - sum_k q_0(k) start(k) - sum_k q_last(k) end(k)
    - sum_t sum_ij q_t(i, j) trans(i, j)``, all scores of the student divided by T; the last term is summed over
    the batch through `targets.moves`.

    Args: the student's compact emissions `(batch, length, K)` and mask, its effective `start`, `transitions`, `end`.
    """
    scale = 1.0 / temperature
    emissions, start, transitions, end = (x.float() * scale for x in (emissions, start, transitions, end))
    q = targets.tokens * mask[..., None]
    last = (mask.sum(dim=1) - 1).clamp(min=0)
    expected = (q * emissions).sum() + (q[:, 0] * start).sum()
    expected = expected + (q[torch.arange(q.shape[0], device=q.device), last] * end).sum()
    # 0 * FORBIDDEN_SCORE is 0: a forbidden move has teacher probability exactly 0.
    expected = expected + (targets.moves * transitions).sum()
    log_z = crf_log_partition(emissions, mask, start, transitions, end).sum().to(expected.dtype)
    return (log_z - expected) / emissions.shape[0] * temperature ** 2


# ---------------------------------------------------------------------------------------------------------------
# Classifier soft targets and TinyBERT's intermediate losses
# ---------------------------------------------------------------------------------------------------------------


def soft_logits_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
                     multi_label: bool = False) -> torch.Tensor:
    """`T**2 * KL(softmax(t / T) || softmax(s / T))`, mean over rows (`(batch, num_labels)` logits). Multi-label:
    the binary KL of each label's sigmoid at T, summed over labels, mean over rows."""
    s, t = student_logits.float() / temperature, teacher_logits.float() / temperature
    if multi_label:
        q = torch.sigmoid(t)
        kl = (q * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - q) * (F.logsigmoid(-t) - F.logsigmoid(-s))).sum(-1)
    else:
        kl = (F.softmax(t, -1) * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1)
    return kl.mean() * temperature ** 2


def hidden_state_loss(student_states, teacher_states, pairs: list[tuple[int, int]], attention_mask: torch.Tensor,
                      projection: nn.Module | None = None) -> torch.Tensor:
    """Mean over `pairs` (student index, teacher index into the `hidden_states` tuples, 0 = embeddings) of the MSE
    between projected student states and teacher states `(batch, seq, hidden)`, over real tokens and hidden units."""
    tokens = attention_mask.bool()
    losses = []
    for s, t in pairs:
        student = student_states[s] if projection is None else projection(student_states[s])
        losses.append(F.mse_loss(student[tokens].float(), teacher_states[t][tokens].float()))
    return torch.stack(losses).mean()


def attention_loss(student_maps, teacher_maps, pairs: list[tuple[int, int]], attention_mask: torch.Tensor):
    """Mean over `pairs` (student layer, teacher layer, 0-based) of the MSE between attention maps
    `(batch, heads, seq, seq)` over real query tokens (all keys: padded keys have probability 0 in both). Heads are
    compared one to one, or averaged over heads first when the counts differ."""
    queries = attention_mask.bool()
    losses = []
    for s, t in pairs:
        student, teacher = student_maps[s].float(), teacher_maps[t].float()
        if student.shape[1] != teacher.shape[1]:
            student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
        # (batch, heads, q, k) -> (real queries, heads, k)
        losses.append(F.mse_loss(student.transpose(1, 2)[queries], teacher.transpose(1, 2)[queries]))
    return torch.stack(losses).mean()


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

LOSS_NAMES = ("soft", "hard", "gold", "hidden", "attention")


@dataclass
class DistillationOutput(ModelOutput):
    """The weighted total `loss` and each switched-on component (unweighted), scalars; `logits` of the student."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    soft: torch.Tensor | None = None
    hard: torch.Tensor | None = None
    gold: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    attention: torch.Tensor | None = None


@contextmanager
def encoder_returns(model, hidden_states: bool, attentions: bool):
    """Make the encoder return its hidden states and attention maps for the duration, through its config: the
    `output_*` arguments do not reach every encoder (the CRF model passes only what the encoder's signature names,
    and transformers 5 encoders take them as keyword arguments)."""
    config = model.base_model.config
    saved = config.output_hidden_states, config.output_attentions
    config.output_hidden_states, config.output_attentions = hidden_states or saved[0], attentions or saved[1]
    try:
        yield
    finally:
        config.output_hidden_states, config.output_attentions = saved


class AverageProjectionGradients(TrainerCallback):
    """With several processes, DDP syncs the student only: average the projection's gradients ourselves."""

    def __init__(self, projection: nn.Module):
        self.projection = projection

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        world = torch.distributed.get_world_size()
        for param in self.projection.parameters():
            if param.grad is not None:
                torch.distributed.all_reduce(param.grad)
                param.grad /= world


class DistillationTrainer(OrderedEvalTrainer):
    """`OrderedEvalTrainer` whose training loss is the weighted distillation loss (see the module docstring).

    Evaluation and prediction run the student alone (its own loss on the gold labels), so the recipes' metrics
    and predictions work unchanged. `task` is "ner" (a `BertCrfForTokenClassification` pair; batches carry
    `tag_mask` and `labels`, -100 without gold) or "classification" (batches carry `labels`, -1 without gold).
    """

    def __init__(self, *args, teacher, distillation: DistillationArguments, task: str, layer_map: list[int],
                 projection: nn.Module | None = None, **kwargs):
        if task not in ("ner", "classification"):
            raise ValueError(f"task must be 'ner' or 'classification', got {task!r}")
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if projection is not None:
            callbacks.append(AverageProjectionGradients(projection))
        super().__init__(*args, callbacks=callbacks, **kwargs)
        self.task, self.distillation, self.layer_map = task, distillation, layer_map
        self.temperature = resolved_temperature(distillation.temperature, task)
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False) if distillation.uses_teacher else None
        self.projection = projection.to(self.args.device) if projection is not None else None
        self.model_accepts_loss_kwargs = False  # a mean loss: the Trainer divides it for gradient accumulation
        self._component_sums, self._component_count = {}, 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the student alone, on the gold labels
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        output = self.distillation_loss(model, inputs)
        self._component_count += 1
        for name in LOSS_NAMES:
            value = getattr(output, name)
            if value is not None:
                self._component_sums[name] = self._component_sums.get(name, 0.0) + float(value.detach())
        return (output.loss, output) if return_outputs else output.loss

    def distillation_loss(self, model, inputs) -> DistillationOutput:
        d = self.distillation
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        tag_mask = inputs.pop("tag_mask", None)
        hidden, attention = d.hidden_weight > 0, d.attention_weight > 0
        unwrapped = self.accelerator.unwrap_model(model)
        with encoder_returns(unwrapped, hidden, attention):
            student = model(**inputs)
        teacher = None
        if self.teacher is not None:
            with torch.no_grad(), encoder_returns(self.teacher, hidden, attention):
                teacher = self.teacher(**inputs)
        parts = {}
        if self.task == "ner":
            parts.update(self._crf_losses(unwrapped, student.logits, teacher, labels, tag_mask.bool()))
        else:
            parts.update(self._classifier_losses(unwrapped, student.logits, teacher, labels))
        if hidden:
            pairs = [(0, 0)] + [(m + 1, g + 1) for m, g in enumerate(self.layer_map)]
            parts["hidden"] = hidden_state_loss(student.hidden_states, teacher.hidden_states, pairs,
                                                inputs["attention_mask"], self.projection)
        if attention:
            parts["attention"] = attention_loss(student.attentions, teacher.attentions,
                                                list(enumerate(self.layer_map)), inputs["attention_mask"])
        weights = {"soft": d.soft_weight, "hard": d.hard_weight, "gold": d.gold_weight, "hidden": d.hidden_weight,
                   "attention": d.attention_weight}
        total = sum(weights[name] * value for name, value in parts.items())
        if not torch.is_tensor(total):  # nothing applies to this batch (transfer rows, gold only)
            total = student.logits.sum() * 0.0
        return DistillationOutput(loss=total, logits=student.logits, **parts)

    def _crf_losses(self, student_model, emissions, teacher, labels, tag_mask) -> dict:
        d, parts = self.distillation, {}
        rows = tag_mask.any(dim=1)
        if d.gold_weight > 0 and labels is not None:
            gold_rows = rows & (labels != -100).any(dim=1)
            if bool(gold_rows.any()):
                parts["gold"] = student_model.crf_loss(emissions[gold_rows], labels[gold_rows], tag_mask[gold_rows])
        if teacher is None or not bool(rows.any()):
            return parts
        if d.soft_weight > 0:
            _, _, mask, student_emissions, teacher_emissions = labelled_emissions(tag_mask, emissions, teacher.logits)
            tokens, moves = self.teacher.crf.marginals(teacher_emissions, mask, self.temperature, with_moves=True)
            targets = CrfMarginals(tokens, moves)
            parts["soft"] = crf_soft_target_loss(student_emissions, mask, *student_model.crf.effective_scores(),
                                                 targets, self.temperature)
        if d.hard_weight > 0:
            paths = self.teacher.decode(teacher.logits, tag_mask)
            parts["hard"] = student_model.crf_loss(emissions, paths, tag_mask)
        return parts

    def _classifier_losses(self, student_model, logits, teacher, labels) -> dict:
        d, parts = self.distillation, {}
        multi_label = student_model.config.problem_type == "multi_label_classification"
        if d.gold_weight > 0 and labels is not None:
            gold_rows = (labels >= 0).all(dim=-1) if multi_label else labels >= 0
            if bool(gold_rows.any()):
                if multi_label:
                    parts["gold"] = F.binary_cross_entropy_with_logits(logits[gold_rows].float(),
                                                                       labels[gold_rows].float())
                else:
                    parts["gold"] = F.cross_entropy(logits[gold_rows].float(), labels[gold_rows])
        if teacher is not None and d.soft_weight > 0:
            parts["soft"] = soft_logits_loss(logits, teacher.logits, self.temperature, multi_label)
        return parts

    def log(self, logs: dict, *args, **kwargs) -> None:
        # Training logs also get each component's mean since the last log (loss_soft, loss_gold, ...).
        if "loss" in logs and self._component_count:
            for name, total in self._component_sums.items():
                logs[f"loss_{name}"] = round(total / self._component_count, 4)
            self._component_sums, self._component_count = {}, 0
        super().log(logs, *args, **kwargs)


def distillation_optimizer(student, projection: nn.Module | None, training_args, head_learning_rate: float | None):
    """`build_optimizer` for the student (encoder at `--learning_rate`, new layers at `--head_learning_rate`), plus
    the projection at the new layers' rate."""
    optimizer = build_optimizer(student, training_args, head_learning_rate)
    if projection is not None:
        optimizer.add_param_group({"name": "projection", "params": list(projection.parameters()),
                                   "lr": head_learning_rate or training_args.learning_rate,
                                   "weight_decay": training_args.weight_decay})
    return optimizer


def hidden_projection(student, teacher) -> nn.Module | None:
    """TinyBERT's W_h: a linear map from the student's hidden width to the teacher's, or None when they agree."""
    width = {m: getattr(encoder_config(m.config), "hidden_size", None) or encoder_config(m.config).dim
             for m in (student, teacher)}
    if width[student] == width[teacher]:
        return None
    projection = nn.Linear(width[student], width[teacher])
    nn.init.normal_(projection.weight, std=getattr(encoder_config(teacher.config), "initializer_range", 0.02))
    nn.init.zeros_(projection.bias)
    return projection


def layer_pairs_for(student, teacher) -> list[int]:
    """The teacher layer (0-based) paired with each student layer: :func:`evenly_spaced_layers`."""
    return evenly_spaced_layers(num_layers(teacher), num_layers(student))


__all__ = [
    "AverageProjectionGradients", "CrfMarginals", "DistillationArguments", "DistillationOutput",
    "DistillationTrainer", "attention_loss", "crf_soft_target_loss", "distillation_optimizer",
    "encoder_config", "evenly_spaced_layers", "hidden_projection", "hidden_state_loss", "layer_pairs_for",
    "load_teacher", "mention_swap_sentences", "num_layers", "read_transfer_sentences", "read_transfer_texts",
    "resolved_temperature", "soft_logits_loss", "student_from_path", "student_from_teacher", "use_eager_attention",
]
