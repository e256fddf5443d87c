#!/usr/bin/env python
"""Continued masked-LM pretraining of a BERT-family encoder on raw text, with whole-word masking.

    python recipes/pretrain.py --model_name_or_path out/expanded --train_files news.txt more.txt \
        --word_segmenter jieba --output_dir out/pretrained --do_train --max_steps 2000 --save_steps 500
    accelerate launch recipes/pretrain.py --model_name_or_path bert-base-chinese --dataset_name NAME ...
    python recipes/pretrain.py ... --adaptation lora        # only the new embedding rows + LoRA + the MLM transform

Text files hold one document or sentence per line (long lines are cut into chunks between words). Masking is 15% of
the words of each chunk, 80/10/10 ([MASK]/random/kept) per word (`hf_bert_tasks.pretraining.inputs` documents the rules).
The output folder holds the full model (LoRA merged in) and the tokenizer, ready for `recipes/ner.py
--model_name_or_path`. Checkpoints (`--save_steps`) resume with `--resume_from_checkpoint last` (or a path).
`all_results.json` holds the training loss and, with `--do_eval`, `eval_loss` and `perplexity`.
"""

import math
import os
import shutil
import sys
from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import AutoModelForMaskedLM, AutoTokenizer, HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hf_bert_tasks.pretraining.inputs import WholeWordMaskCollator, encode_for_mlm
from hf_bert_tasks.pretraining.training import (
    MaskedPositionsTrainer,
    expanded_token_ids,
    lora_with_new_tokens,
    parse_token_ids,
)
from hf_bert_tasks.vocab import EXPANSION_REPORT_FILE, get_segmenter


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Encoder or masked LM (Hub id or folder), e.g. the output of "
                                                      "`python -m hf_bert_tasks.vocab expand`."})
    adaptation: str = field(default="full", metadata={
        "help": "full: train every weight. lora: train LoRA adapters, the embedding rows of the new tokens and the "
                "MLM head's transform only (peft trainable_token_indices); the output has LoRA merged in."})
    trainable_token_ids: str | None = field(default=None, metadata={
        "help": "lora: ids of the rows to train, e.g. '30522-31000,17'; default: the ids in the model folder's "
                f"{EXPANSION_REPORT_FILE}."})
    lora_r: int = field(default=8, metadata={"help": "lora: rank of the adapters."})
    lora_alpha: int = field(default=16, metadata={"help": "lora: scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "lora: dropout on the adapter input."})
    lora_target_modules: str = field(default="query,value", metadata={
        "help": "lora: comma-separated names of the linear layers that get adapters."})


@dataclass
class DataArguments:
    train_files: list[str] | None = field(default=None, metadata={
        "help": "UTF-8 text files, one document or sentence per line."})
    validation_file: str | None = field(default=None, metadata={"help": "A text file to report perplexity on."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set with a text column instead."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    text_column: str = field(default="text", metadata={"help": "Column of the Hub data set that holds the text."})
    max_seq_length: int = field(default=128, metadata={"help": "Chunk length in tokens, [CLS] and [SEP] included."})
    word_segmenter: str = field(default="none", metadata={
        "help": "Words for whole-word masking besides the tokenizer's own (WordPiece continuations, added words): "
                "none, jieba (Chinese; pip install 'hf_bert_tasks[zh]') or a word list file (one word per line)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of the words of each chunk masked."})
    mask_replace_prob: float = field(default=0.8, metadata={"help": "Share of masked words replaced by [MASK]."})
    random_replace_prob: float = field(default=0.1, metadata={"help": "Share of masked words replaced by random "
                                                                      "tokens (the rest are kept)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training texts."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation texts."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenizing."})


def main():
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(os.path.abspath(sys.argv[1]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    set_seed(training_args.seed)
    if model_args.adaptation not in ("full", "lora"):
        raise ValueError(f"--adaptation must be full or lora, got {model_args.adaptation!r}")

    if data_args.dataset_name:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name)
    elif data_args.train_files or data_args.validation_file:
        files = {"train": data_args.train_files, "validation": data_args.validation_file}
        raw = load_dataset("text", data_files={k: v for k, v in files.items() if v})
    else:
        raise ValueError("pass --train_files (and --validation_file) or --dataset_name")
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path)
    segmenter = get_segmenter(data_args.word_segmenter)
    column = data_args.text_column

    def encode(batch):
        return encode_for_mlm(tokenizer, batch[column], max_length=data_args.max_seq_length, segmenter=segmenter)

    with training_args.main_process_first(desc="tokenizing"):
        features = raw.map(encode, batched=True, remove_columns=raw[next(iter(raw))].column_names,
                           num_proc=data_args.preprocessing_num_workers)

    if model_args.adaptation == "lora":
        ids = (parse_token_ids(model_args.trainable_token_ids) if model_args.trainable_token_ids
               else expanded_token_ids(model_args.model_name_or_path))
        model = lora_with_new_tokens(model, ids, r=model_args.lora_r, alpha=model_args.lora_alpha,
                                     dropout=model_args.lora_dropout,
                                     target_modules=model_args.lora_target_modules.split(","))
        model.print_trainable_parameters()
    training_args.remove_unused_columns = False  # the collator needs `word_ids`, which the model does not take
    trainer = MaskedPositionsTrainer(
        model=model,
        args=training_args,
        train_dataset=features["train"] if training_args.do_train else None,
        eval_dataset=features["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=WholeWordMaskCollator(tokenizer, data_args.mlm_probability, data_args.mask_replace_prob,
                                            data_args.random_replace_prob),
    )

    if training_args.do_train:
        resume = training_args.resume_from_checkpoint
        if resume == "last":
            resume = get_last_checkpoint(training_args.output_dir)
            if resume is None:
                raise ValueError(f"--resume_from_checkpoint last: no checkpoint in {training_args.output_dir}")
        result = trainer.train(resume_from_checkpoint=resume)
        if model_args.adaptation == "full":
            trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["perplexity"] = math.exp(min(metrics["eval_loss"], 700.0))
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if training_args.do_train and trainer.is_world_process_zero():
        if model_args.adaptation == "lora":  # the full model, adapters merged: what recipes/ner.py loads
            trainer.model.merge_and_unload().save_pretrained(training_args.output_dir)
            tokenizer.save_pretrained(training_args.output_dir)
        report = os.path.join(model_args.model_name_or_path, EXPANSION_REPORT_FILE)
        if os.path.isfile(report):
            shutil.copy(report, training_args.output_dir)  # which rows are new stays known downstream


if __name__ == "__main__":
    main()
