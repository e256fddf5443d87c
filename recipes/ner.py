#!/usr/bin/env python
"""Fine-tune a BERT-family encoder for NER with a CRF (or softmax, or global pointer) head.

    python recipes/ner.py --model_name_or_path bert-base-cased --dataset_name conll2003 \
        --output_dir out/conll --do_train --do_eval --do_predict
    accelerate launch recipes/ner.py --model_name_or_path PATH --train_file train.conll \
        --validation_file dev.conll --source_scheme IOB1 --output_dir out --do_train --do_eval

Every option is a flag (`--help`); a single JSON file of options works too (`python recipes/ner.py args.json`).
Scores are strict entity-level (seqeval, IOB2 after conversion) at word level; `all_results.json` holds `eval_f1`,
`eval_precision`, `eval_recall` and, with `--do_predict`, the `test_*` scores; predictions go to
`test_predictions.txt` (or `.jsonl` for JSON input) in the data's own tag scheme, line for line with a column test file.
`--head global_pointer` trains the span model of `modeling_bert_global_pointer.py`: entities may nest and overlap
(all of a `spans` file's or CLUENER's entities are kept), scores are exact-span micro precision/recall/F1, per type,
plus `nested_recall`, and test predictions are JSON lines of `tokens` and `entities` (`--decode flat`: the best
non-overlapping spans, for flat data).
`--lora` trains LoRA adapters in the encoder and the new layers (CRF, BiLSTM, emission layer) in full; by default
the output folder is then an ordinary model with the adapters merged in (`--lora_save`, `hf_bert_tasks/lora.py`).
"""

from dataclasses import dataclass, field

from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    TrainingArguments,
    set_seed,
)

from hf_bert_tasks import BertCrfForTokenClassification, BertGlobalPointerForSpanClassification
from hf_bert_tasks.hub import push_recipe_output, take_push_request
from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.ner.data import (
    column_separator,
    entity_type_counts,
    load_ner_dataset,
    repair_counts,
    write_prediction_file,
    write_span_predictions,
)
from hf_bert_tasks.modeling.windows import (
    WindowCollator, encode_words, merge_span_windows, merge_windows, window_span_labels)
from hf_bert_tasks.ner.metrics import entity_scores, span_scores
from hf_bert_tasks.modeling.tagging import best_flat_spans, convert_tags, label_list, split_tag
from hf_bert_tasks.recipe import (
    FineTuneArguments,
    OrderedEvalTrainer,
    RecipeChecks,
    RunArguments,
    end_processes,
    limit_samples,
    log_and_save,
    parse_recipe_arguments,
    train_and_save,
)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Encoder (Hub id or folder), or a saved bert_crf model folder."})
    head: str = field(default="crf", metadata={"help": "crf: BertCrfForTokenClassification; softmax: the encoder's "
                                                       "own AutoModelForTokenClassification head; global_pointer: "
                                                       "BertGlobalPointerForSpanClassification (nested entities)."})
    head_size: int = field(default=64, metadata={"help": "Start/end vector size of the global pointer."})
    efficient_global_pointer: bool = field(default=False, metadata={
        "help": "The efficient global pointer: one projection shared by all types plus per-type biases."})
    bilstm: bool = field(default=False, metadata={"help": "Add a BiLSTM between encoder and emission layer (crf)."})
    lstm_hidden_size: int = field(default=256, metadata={"help": "BiLSTM size, both directions together."})
    classifier_dropout: float = field(default=0.1, metadata={"help": "Dropout before the emission layer (crf)."})
    constrain_transitions: bool = field(default=True, metadata={"help": "Forbid illegal tag transitions in the CRF."})


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "CoNLL columns, char-per-line, CLUENER json or "
                                                                  "tokens/ner_tags jsonl."})
    validation_file: str | None = field(default=None, metadata={"help": "Same format as the training file."})
    test_file: str | None = field(default=None, metadata={"help": "Scored and predicted with --do_predict."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set with tokens/ner_tags columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    data_format: str = field(default="auto", metadata={
        "help": "auto, conll, char, cluener, jsonl, labelstudio (a Label Studio JSON export) or doccano (JSON lines)."})
    tag_column: int = field(default=-1, metadata={"help": "Tag column of CoNLL files (default: the last)."})
    column_separator: str | None = field(default=None, metadata={
        "help": "Column separator of CoNLL files: tab (for tokens that contain spaces), space, or any string; "
                "default: runs of spaces and tabs."})
    repair_tags: bool = field(default=False, metadata={
        "help": "Repair invalid tag sequences (the conlleval rule: a tag that cannot continue the current entity "
                "starts a new one) instead of refusing them; how many tags in how many sentences of each file "
                "changed goes to the log and to all_results.json (<split>_repaired_tags, _repaired_sentences)."})
    source_scheme: str | None = field(default=None, metadata={"help": "Tag scheme of the files (IOB1 for the "
                                                                     "original CoNLL-2003); default: --scheme."})
    scheme: str = field(default="BIO", metadata={"help": "Scheme the model learns: IOB1, BIO, BIOES or BMES."})
    label_strategy: str = field(default="first", metadata={"help": "Labelled word pieces: first, all or x (BIOX)."})
    max_seq_length: int = field(default=128, metadata={"help": "Window length in tokens; longer sentences are "
                                                                "split into overlapping windows, never truncated."})
    stride: int = field(default=32, metadata={"help": "Overlap of consecutive windows in word pieces."})
    context_window: int = field(default=0, metadata={
        "help": "Word pieces of document context around each sentence (unlabelled, no loss; same in training, "
                "evaluation and prediction). Documents: CoNLL -DOCSTART-, a document_id field, or the whole file "
                "for character-per-line data. 0: each sentence alone."})
    decode: str = field(default="nested", metadata={
        "help": "global_pointer: nested (every span above 0) or flat (the non-overlapping spans whose scores sum "
                "highest)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training sentences."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N eval sentences."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test sentences."})


def main():
    model_args, data_args, training_args, lora_args, finetune_args, run_args = parse_recipe_arguments(
        ModelArguments, DataArguments, TrainingArguments, LoraArguments, FineTuneArguments, RunArguments)
    checks = RecipeChecks(training_args, data_args, run_args)
    set_seed(training_args.seed)
    push_to_hub = take_push_request(training_args)  # checks repo id and token before any training

    source_scheme = data_args.source_scheme or data_args.scheme
    raw = load_ner_dataset(
        train_file=data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file,
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config_name,
        format=data_args.data_format, tag_column=data_args.tag_column,
        source_scheme=source_scheme, target_scheme=data_args.scheme,
        separator=column_separator(data_args.column_separator), repair_tags=data_args.repair_tags,
        document_context=data_args.context_window > 0,
        nested="keep" if model_args.head == "global_pointer" else "outer",
    )
    limit_samples(raw, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                        "test": data_args.max_predict_samples})
    checks.data_read(raw)
    checks.check_training_answers(raw, entity_type_counts, data_args.train_file or data_args.dataset_name,
                                  "every training word is tagged")
    tag_names = raw[next(iter(raw))].features["ner_tags"].feature.names
    span_model = model_args.head == "global_pointer"
    if span_model:  # every entity type, nested ones too (the tags hold the outermost entities only)
        tag_names = ["O"] + [f"B-{t}" for t in sorted({e["type"] for split in raw.values() for row in split["entities"]
                                                         for e in row})]

    model, tokenizer = load_model_and_tokenizer(model_args, data_args, tag_names)
    if span_model != isinstance(model, BertGlobalPointerForSpanClassification):
        raise ValueError(f"{model_args.model_name_or_path} is a {model.config.model_type} model: it cannot be trained "
                         f"with --head {model_args.head}")
    checks.check_max_seq_length(data_args.max_seq_length, model.config)
    # peft adapts `model` in place; the Trainer gets the PeftModel (adapter-only checkpoints), the rest uses `model`.
    lora_model = lora_args.apply(model)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    label2id = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(tag_names) - set(labels))
    if span_model:
        model.config.decode = data_args.decode
        unknown = sorted({split_tag(tag)[1] for tag in tag_names if tag != "O"} - set(labels))
    if unknown:
        raise ValueError(f"tags {unknown} of the data are not labels of the model {model_args.model_name_or_path}")

    def encode(batch, indices):
        tags = None if span_model else [[tag_names[t] for t in sentence] for sentence in batch["ner_tags"]]
        windows = encode_words(
            tokenizer, batch["tokens"], tags=tags, label2id=label2id, max_length=data_args.max_seq_length,
            stride=data_args.stride, scheme=data_args.scheme, strategy=data_args.label_strategy,
            document_ids=batch["document_id"], context_window=data_args.context_window,
        )
        if span_model:  # the gold spans of each window, from its sentence's entities
            windows["labels"] = [
                window_span_labels(ids, [(label2id[e["type"]], e["start"], e["end"]) for e in batch["entities"][i]])
                for ids, i in zip(windows["word_ids"], windows["example_index"])]
        windows["example_index"] = [indices[i] for i in windows["example_index"]]  # batch-relative -> split-wide
        return windows

    with training_args.main_process_first(desc="tokenizing"):
        # With context, a document must not be cut between map batches: then the whole split is one batch.
        features = raw.map(encode, batched=True, with_indices=True,
                           batch_size=None if data_args.context_window else 1000,
                           remove_columns=raw[next(iter(raw))].column_names)

    def decode_logits(logits, labels):
        # Runs per eval batch on the device: keep only the decoded tag ids, not the emissions.
        if span_model:
            return model.decode(logits)  # (batch, most spans, 4): the spans above the threshold
        mask = labels != -100
        if isinstance(model, BertCrfForTokenClassification):
            return model.decode(logits, mask)
        return logits.argmax(-1).masked_fill(~mask, -100)

    def word_predictions(split, predicted_ids):
        windows = features[split]
        piece_tags = [[None if t < 0 else labels[t] for t in row[: len(w)]]
                      for row, w in zip(predicted_ids.tolist(), windows["word_ids"])]
        tags, _ = merge_windows(windows["word_ids"], windows["example_index"], piece_tags,
                                [len(s) for s in raw[split]["tokens"]], scheme=data_args.scheme,
                                strategy=data_args.label_strategy)
        return tags

    def span_predictions(split, packed):
        """Per sentence, its entities `(start, end, type)` from the windows' spans (`model.decode`)."""
        windows = features[split]
        window_spans = [[(int(k), int(a), int(b), p) for k, a, b, p in row if k >= 0] for row in packed.tolist()]
        merged = merge_span_windows(windows["word_ids"], windows["example_index"], window_spans, len(raw[split]))
        if data_args.decode == "flat":
            merged = [best_flat_spans(spans) for spans in merged]
        return [[(start, end, labels[k]) for k, start, end, _ in spans] for spans in merged]

    def metrics_for(split):
        if span_model:
            gold = [[(e["start"], e["end"], e["type"]) for e in row] for row in raw[split]["entities"]]
        else:
            gold = [[tag_names[t] for t in sentence] for sentence in raw[split]["ner_tags"]]

        def compute_metrics(prediction):
            if span_model:
                scores = span_scores(gold, span_predictions(split, prediction.predictions))
                scores.pop("nested_support")
            else:
                scores = entity_scores(gold, word_predictions(split, prediction.predictions), data_args.scheme)
            per_type = {f"{name}_f1": s["f1"] for name, s in scores.pop("per_type").items()}
            return {**scores, **per_type}

        return compute_metrics

    trainer = OrderedEvalTrainer(
        model=model if lora_model is None else lora_model,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=features["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=WindowCollator(tokenizer.pad_token_id or 0),
        compute_metrics=metrics_for("validation") if "validation" in features else None,
        preprocess_logits_for_metrics=decode_logits,
        optimizers=(finetune_args.optimizer(model, training_args), None),
        callbacks=finetune_args.callbacks(),
    )
    checks.attach(trainer, **repair_counts(raw))

    if training_args.do_train:
        train_and_save(trainer, training_args, lora_args, lora_model)
    if training_args.do_eval:
        log_and_save(trainer, "eval", trainer.evaluate())
    if training_args.do_predict:
        trainer.compute_metrics = metrics_for("test")
        output = trainer.predict(features["test"], metric_key_prefix="test")
        log_and_save(trainer, "test", output.metrics)
        if trainer.is_world_process_zero() and span_model:
            write_span_predictions(training_args.output_dir, raw["test"]["tokens"],
                                   span_predictions("test", output.predictions))
        elif trainer.is_world_process_zero():
            # In the data's own scheme and layout: JSON lines for JSON input, else the test file's lines.
            predicted = [convert_tags(tags, data_args.scheme, source_scheme)
                         for tags in word_predictions("test", output.predictions)]
            write_prediction_file(training_args.output_dir, raw["test"]["tokens"], predicted, data_args.test_file,
                                  data_args.data_format, column_separator(data_args.column_separator))
    if push_to_hub and trainer.is_world_process_zero():
        settings = {"head": model_args.head, "decode": data_args.decode, "bilstm": model_args.bilstm,
                    "scheme": data_args.scheme,
                    "label_strategy": data_args.label_strategy, "max_seq_length": data_args.max_seq_length,
                    "context_window": data_args.context_window, "learning_rate": training_args.learning_rate,
                    **finetune_args.settings(), "num_train_epochs": training_args.num_train_epochs,
                    "per_device_train_batch_size": training_args.per_device_train_batch_size,
                    "lora": lora_args.lora, "seed": training_args.seed}
        push_recipe_output(training_args, data_args.dataset_name, settings)


def load_model_and_tokenizer(model_args, data_args, tag_names):
    """A saved model folder is reused with its labels; an encoder gets a new head with the labels of the scheme
    for the data's entity types (plus "X" for the BIOX strategy)."""
    path = model_args.model_name_or_path
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    # Every tag of the scheme for the entity types seen, so that e.g. an I-PER absent from training is no error.
    entity_types = sorted({split_tag(tag)[1] for tag in tag_names if tag != "O"})
    labels = label_list(data_args.scheme, entity_types, with_x=data_args.label_strategy == "x")
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    if config.model_type in ("bert_crf", "bert_global_pointer"):
        return AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True), tokenizer
    if model_args.head == "crf":
        model = BertCrfForTokenClassification.from_encoder(
            path, labels, use_bilstm=model_args.bilstm, lstm_hidden_size=model_args.lstm_hidden_size,
            classifier_dropout=model_args.classifier_dropout, tag_scheme=data_args.scheme,
            constrain_transitions=model_args.constrain_transitions, label_strategy=data_args.label_strategy,
            max_seq_length=data_args.max_seq_length, stride=data_args.stride, context_window=data_args.context_window,
        )
    elif model_args.head == "global_pointer":  # the labels are the entity types
        model = BertGlobalPointerForSpanClassification.from_encoder(
            path, entity_types, head_size=model_args.head_size, efficient=model_args.efficient_global_pointer,
            classifier_dropout=model_args.classifier_dropout, decode=data_args.decode,
            max_seq_length=data_args.max_seq_length, stride=data_args.stride, context_window=data_args.context_window,
        )
    elif model_args.head == "softmax":
        model = AutoModelForTokenClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        # The predictor reads these, as it does from a CRF model's config.
        model.config.tag_scheme, model.config.label_strategy = data_args.scheme, data_args.label_strategy
        model.config.max_seq_length, model.config.stride = data_args.max_seq_length, data_args.stride
        model.config.context_window = data_args.context_window
    else:
        raise ValueError(f"--head must be crf, softmax or global_pointer, got {model_args.head!r}")
    return model, tokenizer


if __name__ == "__main__":
    main()
    end_processes()
