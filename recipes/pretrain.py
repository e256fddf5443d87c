#!/usr/bin/env python
"""Continued masked-LM pretraining of a BERT-family encoder on raw text, with whole-word masking.

    python recipes/pretrain.py --model_name_or_path out/expanded --train_files news.txt more.txt \
        --word_segmenter jieba --output_dir out/pretrained --do_train --max_steps 2000 --save_steps 500
    python recipes/pretrain.py ... --streaming --max_steps 100000    # corpora larger than memory
    accelerate launch recipes/pretrain.py --model_name_or_path bert-base-chinese --dataset_name NAME ...
    python recipes/pretrain.py ... --lora          # only the new embedding rows + LoRA + the MLM transform

Text files hold one document or sentence per line (long lines are cut into chunks between words). Masking is 15% of
the words of each chunk, 80/10/10 ([MASK]/random/kept) per word, drawn afresh for every batch
(`hf_bert_tasks.pretraining.inputs` documents the rules). The output folder holds the full model (LoRA merged in,
unless `--lora_save adapter`) and the tokenizer, ready for `recipes/ner.py --model_name_or_path`. Checkpoints
(`--save_steps`) resume with `--resume_from_checkpoint last` (or a path). `all_results.json` holds the training loss
and, with `--do_eval`, `eval_loss` and `perplexity`.

Decisions:
- **LoRA flags are the other recipes' `LoraArguments`** (`--lora --lora_r 8 --lora_alpha 16 --lora_dropout 0.1
  --lora_target_modules ... --lora_save merged|adapter|both`, adapters in the encoder's attention and feed-forward
  layers by default). What `--lora` trains here differs from a task recipe, because the model has no new task layer:
  the adapters, the embedding rows of the new tokens (`--trainable_token_ids`, default the ids that `python -m
  hf_bert_tasks.vocab expand` recorded) and the MLM head's transform (`lora_with_new_tokens`). The old switch
  `--adaptation full|lora` is a deprecated alias: `lora` turns on `--lora`, `full` is the default; both warn.
- **`--streaming` reads the corpus lazily** (`datasets` `IterableDataset`, from text files or a Hub data set):
  chunks are built and words masked batch by batch, so memory does not grow with the corpus (tests/test_streaming.py
  measures the peak RSS on a 300 MB corpus). An iterable data set has no length, so `--max_steps` is required;
  `--shuffle_buffer_size` lines are shuffled in a buffer (files are also read in a seeded order, per epoch).
  `--max_train_samples` / `--max_eval_samples` count texts (lines) as without streaming.
- **Several processes each read their own text.** With `--streaming`, batches are not dispatched from the main
  process (`accelerator_config.dispatch_batches` is set to False): when there are at least as many files (shards)
  as processes, each process reads only its files; otherwise every process reads the stream and keeps its own
  batches (each chunk is trained on by one process either way). Pass as many files as processes, or a multiple,
  to spread the reading too.
"""

from hf_bert_tasks.help_cache import print_cached_help

print_cached_help()  # before the imports below, which take seconds

import math
import os
import shutil
import warnings
from dataclasses import dataclass, field

from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    TrainingArguments,
    set_seed,
)

from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.pretraining.data import load_texts
from hf_bert_tasks.pretraining.inputs import WholeWordMaskCollator, encode_for_mlm
from hf_bert_tasks.pretraining.training import (
    MaskedPositionsTrainer,
    expanded_token_ids,
    lora_with_new_tokens,
    parse_token_ids,
)
from hf_bert_tasks.recipe import (
    RecipeChecks,
    RunArguments,
    end_processes,
    log_and_save,
    parse_recipe_arguments,
    train_and_save,
)
from hf_bert_tasks.vocab import EXPANSION_REPORT_FILE, get_segmenter


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Encoder or masked LM (Hub id or folder), e.g. the output of "
                                                      "`python -m hf_bert_tasks.vocab expand`."})
    trainable_token_ids: str | None = field(default=None, metadata={
        "help": "--lora: ids of the embedding rows to train, e.g. '30522-31000,17'; default: the ids in the model "
                f"folder's {EXPANSION_REPORT_FILE}."})
    adaptation: str | None = field(default=None, metadata={
        "help": "Deprecated (warns): `lora` is --lora, `full` the default."})


@dataclass
class DataArguments:
    train_files: list[str] | None = field(default=None, metadata={
        "help": "UTF-8 text files, one document or sentence per line."})
    validation_file: str | None = field(default=None, metadata={"help": "A text file to report perplexity on."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set with a text column instead."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration name."})
    text_column: str = field(default="text", metadata={"help": "Column of the Hub data set that holds the text."})
    streaming: bool = field(default=False, metadata={
        "help": "Read the corpus lazily (a datasets IterableDataset): for corpora larger than memory. Needs "
                "--max_steps."})
    shuffle_buffer_size: int = field(default=10_000, metadata={
        "help": "--streaming: texts held in the shuffle buffer (0: no shuffling, the corpus order)."})
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
    preprocessing_num_workers: int | None = field(default=None, metadata={
        "help": "Processes for tokenizing (not with --streaming, which tokenizes batch by batch)."})


def resolve_adaptation(model_args: ModelArguments, lora_args: LoraArguments) -> None:
    """Map the deprecated `--adaptation` onto `--lora` (with a FutureWarning)."""
    if model_args.adaptation is None:
        return
    if model_args.adaptation not in ("full", "lora"):
        raise ValueError(f"--adaptation must be full or lora, got {model_args.adaptation!r} (it is deprecated: "
                         "use --lora, or nothing for full training)")
    warnings.warn(f"--adaptation is deprecated: use {'--lora' if model_args.adaptation == 'lora' else 'no flag'} "
                  "(the same training)", FutureWarning, stacklevel=2)
    lora_args.lora = lora_args.lora or model_args.adaptation == "lora"


def read_corpus(data_args: DataArguments, training_args: TrainingArguments):
    """The raw text splits (`pretraining.data.load_texts`): a `DatasetDict`, or an `IterableDatasetDict` with
    `--streaming`; the first N texts of each with `--max_*_samples`, shuffled through a buffer when streamed."""
    if data_args.streaming:
        if training_args.do_train and training_args.max_steps <= 0:
            raise ValueError("--streaming needs --max_steps: a streamed corpus has no length, so the number of steps "
                             "in an epoch is unknown (pass e.g. --max_steps 10000)")
        if data_args.preprocessing_num_workers:
            raise ValueError("--preprocessing_num_workers does not apply to --streaming (texts are tokenized batch "
                             "by batch as training reads them)")
    raw = load_texts(data_args.train_files, data_args.validation_file, data_args.dataset_name,
                     data_args.dataset_config_name, streaming=data_args.streaming)
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and split in raw:
            raw[split] = (raw[split].take(limit) if data_args.streaming
                          else raw[split].select(range(min(limit, len(raw[split])))))
    if data_args.streaming and "train" in raw and data_args.shuffle_buffer_size > 0:
        raw["train"] = raw["train"].shuffle(seed=training_args.seed, buffer_size=data_args.shuffle_buffer_size)
    return raw


def main():
    model_args, data_args, training_args, lora_args, run_args = parse_recipe_arguments(
        ModelArguments, DataArguments, TrainingArguments, LoraArguments, RunArguments)
    resolve_adaptation(model_args, lora_args)
    checks = RecipeChecks(training_args, data_args, run_args)
    set_seed(training_args.seed)

    raw = read_corpus(data_args, training_args)
    checks.data_read(raw)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path)
    checks.check_max_seq_length(data_args.max_seq_length, model.config)
    segmenter = get_segmenter(data_args.word_segmenter)
    column = data_args.text_column

    def encode(batch):
        return encode_for_mlm(tokenizer, batch[column], max_length=data_args.max_seq_length, segmenter=segmenter)

    first = raw[next(iter(raw))]
    # A streamed Hub data set may not declare its columns: peek at its first row.
    columns = first.column_names or list(next(iter(first)).keys())
    if data_args.streaming:  # lazy: runs as the Trainer reads batches
        features = raw.map(encode, batched=True, remove_columns=columns)
        training_args.accelerator_config.dispatch_batches = False  # each process reads its own text (see above)
    else:
        with training_args.main_process_first(desc="tokenizing"):
            features = raw.map(encode, batched=True, remove_columns=columns,
                               num_proc=data_args.preprocessing_num_workers)

    peft_model = None
    if lora_args.lora:
        ids = (parse_token_ids(model_args.trainable_token_ids) if model_args.trainable_token_ids
               else expanded_token_ids(model_args.model_name_or_path))
        model = peft_model = lora_with_new_tokens(
            model, ids, r=lora_args.lora_r, alpha=lora_args.lora_alpha, dropout=lora_args.lora_dropout,
            target_modules=lora_args.lora_target_modules)
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
    checks.attach(trainer)

    if training_args.do_train:
        train_and_save(trainer, training_args, lora_args, peft_model)
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["perplexity"] = math.exp(min(metrics["eval_loss"], 700.0))
        log_and_save(trainer, "eval", metrics)
    if training_args.do_train and trainer.is_world_process_zero():
        report = os.path.join(model_args.model_name_or_path, EXPANSION_REPORT_FILE)
        if os.path.isfile(report):
            shutil.copy(report, training_args.output_dir)  # which rows are new stays known downstream


if __name__ == "__main__":
    main()
    end_processes()
