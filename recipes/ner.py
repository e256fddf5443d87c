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

from hf_bert_tasks.help_cache import print_cached_help

print_cached_help()  # before the imports below, which take seconds

from dataclasses import dataclass, field

from transformers import AutoTokenizer, TrainingArguments, set_seed

from hf_bert_tasks.hub import push_recipe_output, take_push_request
from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.modeling.configuration_bert_crf import label_names
from hf_bert_tasks.modeling.tagging import convert_tags, split_tag
from hf_bert_tasks.modeling.windows import WindowCollator
from hf_bert_tasks.ner.data import (
    check_tags_are_labels,
    column_separator,
    encode_dataset,
    entity_type_counts,
    load_ner_dataset,
    repair_counts,
    write_prediction_file,
    write_span_predictions,
)
from hf_bert_tasks.ner.metrics import EntityEvaluation
from hf_bert_tasks.ner.predictor import load_tagger
from hf_bert_tasks.recipe import (
    FineTuneArguments,
    OrderedEvalTrainer,
    RecipeChecks,
    RunArguments,
    card_settings,
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

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, trust_remote_code=True)
    model = load_tagger(
        model_args.model_name_or_path, tag_names, head=model_args.head, bilstm=model_args.bilstm,
        lstm_hidden_size=model_args.lstm_hidden_size, classifier_dropout=model_args.classifier_dropout,
        constrain_transitions=model_args.constrain_transitions, scheme=data_args.scheme,
        label_strategy=data_args.label_strategy, max_seq_length=data_args.max_seq_length, stride=data_args.stride,
        context_window=data_args.context_window, head_size=model_args.head_size,
        efficient_global_pointer=model_args.efficient_global_pointer, decode=data_args.decode,
    )
    if span_model != (model.config.model_type == "bert_global_pointer"):
        raise ValueError(f"{model_args.model_name_or_path} is a {model.config.model_type} model: it cannot be trained "
                         f"with --head {model_args.head}")
    checks.check_max_seq_length(data_args.max_seq_length, model.config)
    # peft adapts `model` in place; the Trainer gets the PeftModel (adapter-only checkpoints), the rest uses `model`.
    lora_model = lora_args.apply(model)
    labels = label_names(model.config)
    label2id = {label: i for i, label in enumerate(labels)}
    if span_model:  # its labels are the entity types
        model.config.decode = data_args.decode
    check_tags_are_labels([split_tag(tag)[1] for tag in tag_names if tag != "O"] if span_model else tag_names,
                          labels, f"the model {model_args.model_name_or_path}")

    with training_args.main_process_first(desc="tokenizing"):
        features = encode_dataset(
            raw, tokenizer, label2id, max_length=data_args.max_seq_length, stride=data_args.stride,
            scheme=data_args.scheme, strategy=data_args.label_strategy, context_window=data_args.context_window,
            spans=span_model)

    evaluation = EntityEvaluation(raw, features, labels, data_args.scheme, data_args.label_strategy,
                                  span_decode=data_args.decode if span_model else None)

    trainer = OrderedEvalTrainer(
        model=model if lora_model is None else lora_model,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=features["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=WindowCollator(tokenizer.pad_token_id or 0),
        compute_metrics=evaluation.compute_metrics("validation") if "validation" in features else None,
        preprocess_logits_for_metrics=evaluation.decode_logits(model),
        optimizers=(finetune_args.optimizer(model, training_args), None),
        callbacks=finetune_args.callbacks(),
    )
    checks.attach(trainer, **repair_counts(raw))

    if training_args.do_train:
        train_and_save(trainer, training_args, lora_args, lora_model)
    if training_args.do_eval:
        log_and_save(trainer, "eval", trainer.evaluate())
    if training_args.do_predict:
        trainer.compute_metrics = evaluation.compute_metrics("test")
        output = trainer.predict(features["test"], metric_key_prefix="test")
        log_and_save(trainer, "test", output.metrics)
        if trainer.is_world_process_zero() and span_model:
            write_span_predictions(training_args.output_dir, raw["test"]["tokens"],
                                   evaluation.spans("test", output.predictions))
        elif trainer.is_world_process_zero():
            # In the data's own scheme and layout: JSON lines for JSON input, else the test file's lines.
            predicted = [convert_tags(tags, data_args.scheme, source_scheme)
                         for tags in evaluation.word_tags("test", output.predictions)]
            write_prediction_file(training_args.output_dir, raw["test"]["tokens"], predicted, data_args.test_file,
                                  data_args.data_format, column_separator(data_args.column_separator))
    if push_to_hub and trainer.is_world_process_zero():
        settings = card_settings(
            training_args, finetune_args, lora_args, head=model_args.head, decode=data_args.decode,
            bilstm=model_args.bilstm, scheme=data_args.scheme, label_strategy=data_args.label_strategy,
            max_seq_length=data_args.max_seq_length, context_window=data_args.context_window)
        push_recipe_output(training_args, data_args.dataset_name, settings)


if __name__ == "__main__":
    main()
    end_processes()
