#!/usr/bin/env python
"""Distil a trained teacher of ours (a BERT-CRF tagger or a text classifier) into a smaller student (TinyBERT's step).

    python recipes/distill.py --teacher_name_or_path out/conll --student_layers 3 \
        --train_file eng.train --validation_file eng.testa --test_file eng.testb --source_scheme IOB1 \
        --output_dir out/conll-3layers --do_train --do_eval --do_predict
    accelerate launch recipes/distill.py --teacher_name_or_path out/sst2 --student_layers 2 \
        --train_file train.tsv --validation_file dev.tsv --output_dir out/sst2-2layers --do_train --do_eval

The student is `--student_layers N` evenly spaced layers of the teacher (layer m from teacher layer floor(m*L/N);
embeddings, emission layer or classifier and CRF copied) or `--student_name_or_path` (any encoder folder or config,
with the teacher's tokenizer). Losses, each weighted (0 switches it off): `--soft_weight` (CRF marginals at
`--temperature`, or the classifier's softened logits), `--hard_weight` (the teacher's Viterbi paths), `--gold_weight`,
`--hidden_weight` and `--attention_weight` (TinyBERT's intermediate losses). `--transfer_file` adds unlabelled text
the teacher labels; `--augment_mentions P` (NER) adds P passes of the training sentences with their entity mentions
swapped for others of the same type (TinyBERT's data augmentation), labelled by the teacher the same way.
`--soft_weight 0` is plain fine-tuning of the student (the baseline). The decisions and formulas are in
`hf_bert_tasks/distillation.py`. A student cut from the teacher's layers wants a larger `--learning_rate` than its
teacher (2e-4 against 5e-5 for MiniLM on CoNLL-2003: benchmarks/README.md, "Distillation").

The data, scores and outputs are those of `recipes/ner.py` or `recipes/classify.py` (the teacher's task): the tag
scheme, windows and long-text settings are the teacher's. The output folder is an ordinary model of ours
(`NerPredictor` / `TextClassifier`, `trust_remote_code` loading); `--push_to_hub --hub_model_id ORG/NAME` pushes it
with a card naming the teacher and the distillation settings.
"""

from hf_bert_tasks.help_cache import print_cached_help

print_cached_help()  # before the imports below, which take seconds

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from datasets import Dataset, concatenate_datasets
from transformers import DataCollatorWithPadding, TrainingArguments, set_seed

from hf_bert_tasks.distillation import (
    DistillationArguments,
    DistillationTrainer,
    distillation_optimizer,
    hidden_projection,
    layer_pairs_for,
    load_teacher,
    mention_swap_sentences,
    read_transfer_sentences,
    read_transfer_texts,
    student_from_path,
    student_from_teacher,
    use_eager_attention,
)
from hf_bert_tasks.hub import push_recipe_output, take_push_request
from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.modeling.configuration_bert_crf import label_names
from hf_bert_tasks.recipe import (
    FineTuneArguments,
    RecipeChecks,
    RunArguments,
    end_processes,
    limit_samples,
    log_and_save,
    parse_recipe_arguments,
    card_settings,
    train_and_save,
)


class TaskParts(NamedTuple):
    """What the teacher's task contributes: the features by split, the Trainer's collator and metrics, the metrics
    of a split by name, and the writer of test predictions."""

    features: dict
    trainer_kwargs: dict
    metrics_for: Callable
    write_test_predictions: Callable


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "Training file, in a format of the teacher's "
                                                                  "recipe (ner.py or classify.py)."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluated with --do_eval."})
    test_file: str | None = field(default=None, metadata={"help": "Scored and predicted with --do_predict."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set instead of files."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    data_format: str = field(default="auto", metadata={"help": "As --data_format of ner.py or classify.py."})
    tag_column: int = field(default=-1, metadata={"help": "NER: tag column of CoNLL files (default: the last)."})
    source_scheme: str | None = field(default=None, metadata={"help": "NER: tag scheme of the files (IOB1 for the "
                                                                     "original CoNLL-2003); default: the teacher's."})
    text_column: str | None = field(default=None, metadata={"help": "Classification: the text column."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Classification: the second text."})
    label_column: str = field(default="label", metadata={"help": "Classification: the label column."})
    label_delimiter: str = field(default=",", metadata={"help": "Classification: separates multi-label labels."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N eval examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})


def main():
    distillation, data_args, training_args, finetune_args, run_args = parse_recipe_arguments(
        DistillationArguments, DataArguments, TrainingArguments, FineTuneArguments, RunArguments)
    checks = RecipeChecks(training_args, data_args, run_args)
    set_seed(training_args.seed)
    push_to_hub = take_push_request(training_args)  # checks repo id and token before any training

    teacher, tokenizer, task = load_teacher(distillation.teacher_name_or_path)
    if distillation.student_layers is not None:
        student, _ = student_from_teacher(teacher, distillation.student_layers)
    else:
        student = student_from_path(distillation.student_name_or_path, teacher, tokenizer)
    layer_map = layer_pairs_for(student, teacher)
    if distillation.attention_weight > 0:
        use_eager_attention(teacher)
        use_eager_attention(student)
    projection = hidden_projection(student, teacher) if distillation.hidden_weight > 0 else None

    build = build_ner if task == "ner" else build_classification
    task_parts = build(distillation, data_args, training_args, checks, student, tokenizer)
    features = task_parts.features
    trainer = DistillationTrainer(
        model=student,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=features["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        optimizers=(distillation_optimizer(student, projection, training_args, finetune_args.head_learning_rate)
                    if training_args.do_train else None, None),
        callbacks=finetune_args.callbacks(),
        teacher=teacher, distillation=distillation, task=task, layer_map=layer_map, projection=projection,
        **task_parts.trainer_kwargs,
    )
    checks.attach(trainer)

    if training_args.do_train:
        train_and_save(trainer, training_args, LoraArguments(), None,
                       student_parameters=student.num_parameters(), teacher_parameters=teacher.num_parameters())
    if training_args.do_eval:
        log_and_save(trainer, "eval", trainer.evaluate())
    if training_args.do_predict:
        trainer.compute_metrics = task_parts.metrics_for("test")
        output = trainer.predict(features["test"], metric_key_prefix="test")
        log_and_save(trainer, "test", output.metrics)
        if trainer.is_world_process_zero():
            task_parts.write_test_predictions(output.predictions)
    if push_to_hub and trainer.is_world_process_zero():
        settings = card_settings(training_args, finetune_args, **distillation.settings(task))
        push_recipe_output(training_args, data_args.dataset_name, settings)


def build_ner(distillation, data_args, training_args, checks, student, tokenizer):
    """Features (train with transfer text, validation, test), Trainer arguments and the test-prediction writer of a
    CRF student, in the teacher's scheme and windows."""
    from hf_bert_tasks.modeling.tagging import convert_tags
    from hf_bert_tasks.modeling.windows import WindowCollator, encode_words
    from hf_bert_tasks.ner.data import check_tags_are_labels, encode_dataset, load_ner_dataset, write_prediction_file
    from hf_bert_tasks.ner.metrics import EntityEvaluation

    config = student.config
    scheme, strategy = config.tag_scheme, config.label_strategy
    source_scheme = data_args.source_scheme or scheme
    raw = load_ner_dataset(
        train_file=data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file,
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config_name,
        format=data_args.data_format, tag_column=data_args.tag_column, source_scheme=source_scheme,
        target_scheme=scheme,
    )
    limit_samples(raw, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                        "test": data_args.max_predict_samples})
    checks.data_read(raw)
    tag_names = raw[next(iter(raw))].features["ner_tags"].feature.names
    labels = label_names(config)
    label2id = {label: i for i, label in enumerate(labels)}
    check_tags_are_labels(tag_names, labels, f"the teacher {distillation.teacher_name_or_path}")
    windowing = {"max_length": config.max_seq_length, "stride": config.stride, "scheme": scheme,
                 "strategy": strategy, "context_window": config.context_window}

    with training_args.main_process_first(desc="tokenizing"):
        features = encode_dataset(raw, tokenizer, label2id, **windowing)
        sentences, documents = [], []
        if distillation.transfer_file and training_args.do_train:
            sentences, documents = read_transfer_sentences(distillation.transfer_file, distillation.transfer_format,
                                                           distillation.max_transfer_samples)
        if distillation.augment_mentions and training_args.do_train:
            train = raw["train"]
            copies, copy_documents = mention_swap_sentences(
                train["tokens"], [[tag_names[t] for t in sentence] for sentence in train["ner_tags"]], scheme,
                train["document_id"], passes=distillation.augment_mentions, seed=training_args.seed)
            sentences, documents = sentences + copies, documents + copy_documents
        if sentences:
            windows = encode_words(tokenizer, sentences, document_ids=documents, **windowing)
            windows["labels"] = [[-100] * len(ids) for ids in windows["input_ids"]]  # no gold: the teacher labels
            transfer = Dataset.from_dict(windows).cast(features["train"].features)
            features["train"] = concatenate_datasets([features["train"], transfer])

    evaluation = EntityEvaluation(raw, features, labels, scheme, strategy)

    def write_test_predictions(predictions):
        predicted = [convert_tags(tags, scheme, source_scheme) for tags in evaluation.word_tags("test", predictions)]
        write_prediction_file(training_args.output_dir, raw["test"]["tokens"], predicted, data_args.test_file,
                              data_args.data_format)

    kwargs = {"data_collator": WindowCollator(tokenizer.pad_token_id or 0),
              "compute_metrics": evaluation.compute_metrics("validation") if "validation" in features else None,
              "preprocess_logits_for_metrics": evaluation.decode_logits(student)}
    return TaskParts(features, kwargs, evaluation.compute_metrics, write_test_predictions)


def build_classification(distillation, data_args, training_args, checks, student, tokenizer):
    """Features, Trainer arguments and the test-prediction writer of a classifier student (the teacher's labels
    and long-text settings)."""
    from hf_bert_tasks.classification.data import load_classification_dataset, write_prediction_file
    from hf_bert_tasks.classification.inputs import encode_dataset, long_text_settings
    from hf_bert_tasks.classification.metrics import ClassificationEvaluation
    from hf_bert_tasks.classification.predictor import resolve_threshold

    if distillation.augment_mentions:
        raise ValueError("--augment_mentions swaps entity mentions: it needs an NER teacher, not a classifier")
    config = student.config
    labels = label_names(config)
    multi_label = config.problem_type == "multi_label_classification"
    raw = load_classification_dataset(
        train_file=data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file,
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config_name,
        format=data_args.data_format, text_column=data_args.text_column, text_pair_column=data_args.text_pair_column,
        label_column=data_args.label_column, labels=labels, multi_label=multi_label,
        label_delimiter=data_args.label_delimiter,
    )
    limit_samples(raw, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                        "test": data_args.max_predict_samples})
    checks.data_read(raw)
    settings = long_text_settings(config)
    threshold = resolve_threshold(config)
    with training_args.main_process_first(desc="tokenizing"):
        windows = {split: encode_dataset(dataset, tokenizer, multi_label=multi_label, **settings)
                   for split, dataset in raw.items()}
        example_index = {split: dataset["example_index"] for split, dataset in windows.items()}
        features = {split: dataset.remove_columns(["example_index", "truncated_tokens"])
                    for split, dataset in windows.items()}
        if distillation.transfer_file and training_args.do_train:
            texts = read_transfer_texts(distillation.transfer_file, distillation.max_transfer_samples)
            transfer = encode_dataset(Dataset.from_dict({"text": texts}), tokenizer, multi_label=multi_label,
                                      **settings).remove_columns(["example_index", "truncated_tokens"])
            no_gold = [-1.0] * len(labels) if multi_label else -1  # the teacher labels these
            transfer = transfer.add_column("labels", [no_gold] * len(transfer)).cast(features["train"].features)
            features["train"] = concatenate_datasets([features["train"], transfer])

    evaluation = ClassificationEvaluation(raw, example_index, labels, multi_label, threshold)

    def write_test_predictions(predictions):
        write_prediction_file(training_args.output_dir, raw["test"], evaluation.records("test", predictions), labels,
                              data_args.test_file, data_args.label_delimiter)

    kwargs = {"data_collator": DataCollatorWithPadding(tokenizer),
              "compute_metrics": evaluation.compute_metrics("validation")}
    return TaskParts(features, kwargs, evaluation.compute_metrics, write_test_predictions)


if __name__ == "__main__":
    main()
    end_processes()
