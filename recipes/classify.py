#!/usr/bin/env python
"""Fine-tune a BERT-family encoder for text classification (transformers' AutoModelForSequenceClassification).

    python recipes/classify.py --model_name_or_path bert-base-chinese --train_file cnews.train.txt \
        --validation_file cnews.val.txt --long_text windows --max_seq_length 256 \
        --output_dir out/cnews --do_train --do_eval
    python recipes/classify.py --model_name_or_path bert-base-chinese --data_format text_label \
        --label_names_file class.txt --train_file train.txt --validation_file dev.txt --output_dir out/thucnews ...
    accelerate launch recipes/classify.py --model_name_or_path bert-base-uncased --dataset_name glue \
        --dataset_config_name sst2 --output_dir out/sst2 --do_train --do_eval
    python recipes/classify.py --model_name_or_path out/cnews --do_predict --test_file new.txt --data_format text \
        --output_dir out/cnews-predictions

Every option is a flag (`--help`); a single JSON file of options works too. Formats, long-document handling and
metrics are explained in `hf_bert_tasks/classification/` (data.py, inputs.py, metrics.py). `all_results.json` holds
`eval_accuracy`, `eval_macro_f1`, `eval_weighted_f1`, `eval_matthews_correlation` and, for two classes, `eval_f1`
(the F1 of label id 1, GLUE's MRPC/QQP score), and `test_*` with a labelled `--test_file`; with the `[UNK]` share
it and `data_results.json` hold what the window length cut (`train_truncated_texts`, `_share`, `_tokens`; `eval_*`,
`test_*`; a warning above 5%). Sentence pairs (`--text_pair_column`) are cut as BERT's `run_classifier.py` cuts
them, never when they fit. The per-class report and confusion matrix go to
`{eval,test}_classification_report.json` and `{eval,test}_confusion_matrix.png`; `--do_predict` writes
`test_predictions.tsv` (or `.jsonl`) with every label's probability. Scores are per text (window logits averaged per
text with `--long_text windows`); the Trainer's `*_samples_per_second` and `eval_loss` count windows.
`--lora` trains LoRA adapters in the encoder and the task layer in full, and saves an ordinary model with them
merged in (`--lora_save`, `hf_bert_tasks/lora.py`). `--push_to_hub --hub_model_id ORG/NAME` pushes the finished
model with a model card of its scores (`hf_bert_tasks/hub.py`); the repo id and the token are checked before training.
"""

from hf_bert_tasks.help_cache import print_cached_help

print_cached_help()  # before the imports below, which take seconds

from dataclasses import dataclass, field

from transformers import (
    AutoConfig,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

from hf_bert_tasks.classification.data import (
    label_counts,
    label_names_of,
    load_classification_dataset,
    write_prediction_file,
)
from hf_bert_tasks.classification.inputs import (
    LONG_TEXT_MODES,
    encode_dataset,
    long_text_settings,
    truncation_counts,
)
from hf_bert_tasks.classification.metrics import (
    ClassificationEvaluation,
    write_classification_report,
)
from hf_bert_tasks.classification.predictor import (
    SAVED_SETTINGS,
    is_trained_classifier,
    load_classifier,
    resolve_threshold,
)
from hf_bert_tasks.hub import push_recipe_output, take_push_request
from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.modeling.configuration_bert_crf import label_names
from hf_bert_tasks.recipe import (
    FineTuneArguments,
    OrderedEvalTrainer,
    RecipeChecks,
    RunArguments,
    end_processes,
    limit_samples,
    log_and_save,
    parse_recipe_arguments,
    card_settings,
    train_and_save,
)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Encoder (Hub id or folder), or a trained classifier folder "
                                                      "(its labels and long-text settings are kept)."})


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "Training file (see --data_format)."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluated with --do_eval."})
    test_file: str | None = field(default=None, metadata={"help": "Predicted with --do_predict (scored when it has "
                                                                 "labels)."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set (its train/validation/test "
                                                                    "splits), instead of files."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    data_format: str = field(default="auto", metadata={
        "help": "label_text (label<TAB>text, cnews), text_label (text<TAB>label, THUCNews titles), text (one text "
                "per line, to predict), tsv or csv (with a header), jsonl; auto: by suffix (.csv .tsv .json[l]), "
                "else label_text."})
    text_column: str | None = field(default=None, metadata={
        "help": "Text column (tsv/csv/jsonl/Hub); default: the only column besides label and pair, else 'text'."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Second text of sentence pairs "
                                                                          "(token_type_ids 1)."})
    label_column: str = field(default="label", metadata={"help": "Label column (tsv/csv/jsonl/Hub)."})
    label_names_file: str | None = field(default=None, metadata={
        "help": "class.txt: line i names class id i; the files' labels are then ids (THUCNews)."})
    labels: list[str] | None = field(default=None, metadata={
        "help": "The label list, in id order; default: the training labels, sorted (numerically if integers)."})
    multi_label: bool = field(default=False, metadata={
        "help": "Several labels per text (sigmoid + BCE loss, problem_type multi_label_classification)."})
    label_delimiter: str = field(default=",", metadata={"help": "Separates the labels of one text (multi-label)."})
    threshold: float | None = field(default=None, metadata={
        "help": "Multi-label: a label is predicted when its probability reaches this; default 0.5 (or the model's)."})
    long_text: str | None = field(default=None, metadata={
        "help": f"Texts longer than the window: {', '.join(LONG_TEXT_MODES)} (windows: overlapping windows trained "
                "with the text's label, logits averaged per text); default: the model's setting, else truncate."})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "Window length in tokens, special tokens included; default: the model's setting, else 128."})
    stride: int | None = field(default=None, metadata={
        "help": "windows: overlap of consecutive windows in tokens; default: the model's setting, else 32."})
    head_tokens: int | None = field(default=None, metadata={
        "help": "head_tail: tokens kept from the start (the rest from the end); default: a quarter of the window."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training texts."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation texts."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test texts."})
    predictions_format: str | None = field(default=None, metadata={
        "help": "tsv or jsonl for test_predictions; default: jsonl for a .json[l] test file, else tsv."})


def main():
    model_args, data_args, training_args, lora_args, finetune_args, run_args = parse_recipe_arguments(
        ModelArguments, DataArguments, TrainingArguments, LoraArguments, FineTuneArguments, RunArguments)
    checks = RecipeChecks(training_args, data_args, run_args)
    set_seed(training_args.seed)
    push_to_hub = take_push_request(training_args)  # checks repo id and token before any training
    if data_args.predictions_format not in (None, "tsv", "jsonl"):
        raise ValueError(f"--predictions_format must be tsv or jsonl, got {data_args.predictions_format!r}")

    # A trained classifier fixes the label list and the problem type; an encoder takes them from the data.
    path = model_args.model_name_or_path
    config = AutoConfig.from_pretrained(path)
    trained = is_trained_classifier(config)
    multi_label = data_args.multi_label or (trained and config.problem_type == "multi_label_classification")
    labels = data_args.labels or (label_names(config) if trained else None)
    raw = load_classification_dataset(
        train_file=data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file,
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config_name,
        format=data_args.data_format, text_column=data_args.text_column, text_pair_column=data_args.text_pair_column,
        label_column=data_args.label_column, label_names_file=data_args.label_names_file, labels=labels,
        multi_label=multi_label, label_delimiter=data_args.label_delimiter,
    )
    limit_samples(raw, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                        "test": data_args.max_predict_samples})
    checks.data_read(raw)
    checks.check_training_answers(raw, label_counts, data_args.train_file or data_args.dataset_name,
                                  "every training text is labelled")
    labelled = [split for split in raw if "label" in raw[split].column_names]
    if not labelled and not trained:
        raise ValueError(f"no labelled data and {path} is not a trained classifier: nothing gives the labels")
    labels = label_names_of(raw[labelled[0]]) if labelled else label_names(config)

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = load_classifier(path, labels, multi_label=multi_label)
    settings = long_text_settings(config if trained else None, long_text=data_args.long_text,
                                  max_seq_length=data_args.max_seq_length, stride=data_args.stride,
                                  head_tokens=data_args.head_tokens)
    threshold = resolve_threshold(config if trained else None, data_args.threshold)
    checks.check_max_seq_length(settings["max_seq_length"], config)
    # Saved with the model, so that the predictor (TextClassifier) cuts long texts as in training and the Space asks
    # for the second text of a pair model.
    sentence_pairs = any("text_pair" in dataset.column_names for dataset in raw.values())
    saved = {**settings, "classification_threshold": threshold, "sentence_pairs": sentence_pairs}
    for key in SAVED_SETTINGS:
        setattr(model.config, key, saved[key])

    with training_args.main_process_first(desc="tokenizing"):
        windows = {split: encode_dataset(dataset, tokenizer, multi_label=multi_label, **settings)
                   for split, dataset in raw.items()}
    example_index = {split: dataset["example_index"] for split, dataset in windows.items()}
    # What the window length cut in each split the run uses; written with the [UNK] share to data_results.json.
    truncated = {}
    for split, prefix, used in (("train", "train", training_args.do_train),
                                ("validation", "eval", training_args.do_eval),
                                ("test", "test", training_args.do_predict)):
        if used:
            truncated.update(truncation_counts(windows[split], len(raw[split]), prefix))
    features = {split: dataset.remove_columns(["example_index", "truncated_tokens"])
                for split, dataset in windows.items()}

    evaluation = ClassificationEvaluation(raw, example_index, labels, multi_label, threshold)

    lora_model = lora_args.apply(model)  # peft adapts `model` in place; the Trainer gets the PeftModel
    trainer = OrderedEvalTrainer(
        model=model if lora_model is None else lora_model,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=features["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),  # pads to the longest window of each batch
        compute_metrics=evaluation.compute_metrics("validation"),
        optimizers=(finetune_args.optimizer(model, training_args), None),
        callbacks=finetune_args.callbacks(),
    )
    checks.attach(trainer, **truncated)

    if training_args.do_train:
        train_and_save(trainer, training_args, lora_args, lora_model)
    if training_args.do_eval:
        log_and_save(trainer, "eval", trainer.evaluate())
        if trainer.is_world_process_zero() and "validation" in evaluation.reports:
            write_classification_report(evaluation.reports["validation"], training_args.output_dir, "eval")
    if training_args.do_predict:
        trainer.compute_metrics = evaluation.compute_metrics("test")
        output = trainer.predict(features["test"], metric_key_prefix="test")
        log_and_save(trainer, "test", output.metrics)
        if trainer.is_world_process_zero():
            if "test" in evaluation.reports:
                write_classification_report(evaluation.reports["test"], training_args.output_dir, "test")
            records = evaluation.records("test", output.predictions)
            write_prediction_file(training_args.output_dir, raw["test"], records, labels, data_args.test_file,
                                  data_args.label_delimiter, data_args.predictions_format)
    if push_to_hub and trainer.is_world_process_zero():
        settings = card_settings(training_args, finetune_args, lora_args)
        push_recipe_output(training_args, data_args.dataset_name, settings)


if __name__ == "__main__":
    main()
    end_processes()
