#!/usr/bin/env python
"""Fine-tune a BERT-family encoder for extractive question answering (SQuAD 1.1 / 2.0, CMRC2018).

    python recipes/qa.py --model_name_or_path bert-base-uncased --dataset_name squad \
        --output_dir out/squad --do_train --do_eval --max_seq_length 384 --doc_stride 128
    accelerate launch recipes/qa.py --model_name_or_path PATH --train_file train-v2.0.json \
        --validation_file dev-v2.0.json --version_2_with_negative --output_dir out/squad2 --do_train --do_eval

Every option is a flag (`--help`); a single JSON file of options works too (`python recipes/qa.py args.json`).
The model is transformers' `AutoModelForQuestionAnswering`; data reading, windows, the n-best search and the scores
live in `hf_bert_tasks/qa/` (data, inputs, metrics, predictor; their docstrings give the decisions). Outputs in
`--output_dir`: the model with its tokenizer and the windowing/decoding settings in config.json (so
`hf_bert_tasks.qa.predictor.QuestionAnswerer` answers as the evaluation did); `all_results.json` with `eval_exact_match`, `eval_f1` (0-100; SQuAD normalisation for English,
CMRC2018 character scores for Chinese) and, with `--do_predict` on a labelled file, `test_*`; `predictions.json`
({id: answer}, the official evaluation scripts' input) and `nbest_predictions.json` for the validation set,
`test_predictions.json` and `test_nbest_predictions.json` for the test set, and for 2.0-style data
`null_odds.json` / `test_null_odds.json` ({id: null score - best span score}) for threshold tuning.
`--lora` trains LoRA adapters in the encoder and the task layer in full, and saves an ordinary model with them
merged in (`--lora_save`, `hf_bert_tasks/lora.py`). `--push_to_hub --hub_model_id ORG/NAME` pushes the finished
model with a model card of its scores (`hf_bert_tasks/hub.py`); the repo id and the token are checked before training.
"""

from hf_bert_tasks.help_cache import print_cached_help

print_cached_help()  # before the imports below, which take seconds

from dataclasses import dataclass, field

import numpy as np
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    set_seed,
)

from hf_bert_tasks.hub import push_recipe_output, take_push_request
from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.qa.data import load_qa_dataset, require_training_questions, write_predictions
from hf_bert_tasks.qa.inputs import prepare_eval_features, prepare_train_features
from hf_bert_tasks.qa.metrics import detect_language, qa_scores
from hf_bert_tasks.qa.predictor import SAVED_SETTINGS, load_qa_model, postprocess_predictions
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
    model_name_or_path: str = field(metadata={"help": "Encoder (Hub id or folder), or a fine-tuned QA model folder."})


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "SQuAD-style JSON (SQuAD 1.1/2.0, CMRC2018)."})
    validation_file: str | None = field(default=None, metadata={"help": "Scored with --do_eval (same format)."})
    test_file: str | None = field(default=None, metadata={"help": "Predicted (and scored if labelled) with "
                                                                 "--do_predict."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set with id/context/question/"
                                                                    "answers columns (squad, squad_v2, cmrc2018)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    version_2_with_negative: bool = field(default=False, metadata={
        "help": "SQuAD 2.0-style data: questions may have no answer (the model may answer nothing). Without it, "
                "a question without answers is an error."})
    language: str = field(default="auto", metadata={
        "help": "Scoring: en (SQuAD normalisation), zh (CMRC2018 character scores) or auto (zh when over 30 "
                "percent of the context characters are CJK)."})
    max_seq_length: int = field(default=384, metadata={"help": "Window length in tokens (question + context "
                                                                "part + special tokens)."})
    doc_stride: int = field(default=128, metadata={"help": "Context tokens shared by consecutive windows of a long "
                                                            "context."})
    max_question_length: int = field(default=64, metadata={"help": "Questions are cut to this many tokens."})
    n_best_size: int = field(default=20, metadata={"help": "Candidate spans kept per question (exact search)."})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer, in tokens."})
    null_score_diff_threshold: float = field(default=0.0, metadata={
        "help": "2.0-style data: answer nothing when null score - best span score exceeds this."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training questions."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation questions."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test questions."})


def main():
    model_args, data_args, training_args, lora_args, finetune_args, run_args = parse_recipe_arguments(
        ModelArguments, DataArguments, TrainingArguments, LoraArguments, FineTuneArguments, RunArguments)
    checks = RecipeChecks(training_args, data_args, run_args)
    set_seed(training_args.seed)
    push_to_hub = take_push_request(training_args)  # checks repo id and token before any training

    raw = load_qa_dataset(
        train_file=data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file,
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config_name,
        version_2_with_negative=data_args.version_2_with_negative,
    )
    limit_samples(raw, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
                        "test": data_args.max_predict_samples})
    checks.data_read(raw)
    if training_args.do_train and "train" in raw:
        require_training_questions(raw["train"], data_args.train_file or f"{data_args.dataset_name}[train]",
                                   data_args.version_2_with_negative)
    language = data_args.language
    if language == "auto":
        language = detect_language(raw[next(iter(raw))]["context"][:200])

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    settings = {key: getattr(data_args, key) for key in SAVED_SETTINGS}
    model = load_qa_model(model_args.model_name_or_path, settings)  # QuestionAnswerer reads them from its config
    checks.check_max_seq_length(data_args.max_seq_length, model.config)
    windows = {key: settings[key] for key in ("max_seq_length", "doc_stride", "max_question_length")}
    labelled = {split: any(len(a["text"]) for a in dataset["answers"]) for split, dataset in raw.items()}

    with training_args.main_process_first(desc="tokenizing"):
        features = {}
        if training_args.do_train:
            features["train"] = raw["train"].map(
                prepare_train_features, batched=True, remove_columns=raw["train"].column_names,
                fn_kwargs={"tokenizer": tokenizer, **windows,
                           "version_2_with_negative": data_args.version_2_with_negative})
        for split in ("validation", "test"):
            if split in raw:
                unsorted = raw[split].map(
                    prepare_eval_features, batched=True, remove_columns=raw[split].column_names,
                    fn_kwargs={"tokenizer": tokenizer, **windows, "with_labels": labelled[split]})
                # Shortest first, so that evaluation batches carry little padding; post-processing finds each
                # window's question by its example_id, whatever the order.
                lengths = [len(ids) for ids in unsorted["input_ids"]]
                features[split] = unsorted.select(np.argsort(lengths, kind="stable"))

    def model_inputs(split):
        return features[split].remove_columns(["example_id", "offset_mapping"])

    predictions = {}  # split -> post-processed predictions of the last evaluation, written after it

    def metrics_for(split):
        def compute_metrics(prediction):
            start_logits, end_logits = prediction.predictions
            # The labels come back with the logits: they prove the windows are still in dataset order.
            if not (np.array_equal(prediction.label_ids[0], list(features[split]["start_positions"]))
                    and np.array_equal(prediction.label_ids[1], list(features[split]["end_positions"]))):
                raise RuntimeError(f"the {split} windows' predictions are not in dataset order")
            predictions[split] = postprocess_predictions(
                raw[split], features[split], start_logits, end_logits, data_args.n_best_size,
                data_args.max_answer_length, data_args.version_2_with_negative, data_args.null_score_diff_threshold)
            answers = {question_id: p["answer"] for question_id, p in predictions[split].items()}
            references = dict(zip(raw[split]["id"], (a["text"] for a in raw[split]["answers"])))
            return qa_scores(answers, references, language)

        return compute_metrics

    lora_model = lora_args.apply(model)  # peft adapts `model` in place; the Trainer gets the PeftModel
    trainer = OrderedEvalTrainer(
        model=model if lora_model is None else lora_model,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=model_inputs("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_for("validation") if "validation" in features else None,
        optimizers=(finetune_args.optimizer(model, training_args), None),
        callbacks=finetune_args.callbacks(),
    )
    checks.attach(trainer)

    if training_args.do_train:
        train_and_save(trainer, training_args, lora_args, lora_model, train_questions=len(raw["train"]),
                       train_windows=len(features["train"]))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics.update(eval_questions=len(raw["validation"]), eval_windows=len(features["validation"]))
        log_and_save(trainer, "eval", metrics)
        if trainer.is_world_process_zero():
            write_predictions(predictions["validation"], training_args.output_dir, "",
                              data_args.version_2_with_negative)
    if training_args.do_predict:
        trainer.compute_metrics = metrics_for("test")
        output = trainer.predict(model_inputs("test"), metric_key_prefix="test")
        if "test" not in predictions:  # unlabelled: no compute_metrics call, decode here
            predictions["test"] = postprocess_predictions(
                raw["test"], features["test"], *output.predictions, data_args.n_best_size,
                data_args.max_answer_length, data_args.version_2_with_negative, data_args.null_score_diff_threshold)
        log_and_save(trainer, "test", output.metrics)
        if trainer.is_world_process_zero():
            write_predictions(predictions["test"], training_args.output_dir, "test_", data_args.version_2_with_negative)
    if push_to_hub and trainer.is_world_process_zero():
        settings = card_settings(training_args, finetune_args, lora_args)
        push_recipe_output(training_args, data_args.dataset_name, settings)


if __name__ == "__main__":
    main()
    end_processes()
