"""recipes/pretrain.py: the recipe end to end with resuming, its LoRA flags and LoRA on the new rows; the library it
runs is tested in test_pretraining_data.py, test_pretraining_inputs.py and test_pretraining_training.py."""

import dataclasses
import importlib.util
import inspect
import json
import math
import os
import subprocess

import pytest
import torch
from conftest import PYTHON, ROOT, run_recipe_in_process, tiny_bert_config, tiny_tokenizer
from transformers import AutoTokenizer, BertForMaskedLM

from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.pretraining.training import lora_with_new_tokens
from hf_bert_tasks.vocab import expand_vocabulary, save_expanded

RECIPE = ROOT / "recipes" / "pretrain.py"


def run_recipe(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "HF_DATASETS_CACHE": str(args[args.index("--output_dir") + 1]) + "-cache"}
    result = subprocess.run([PYTHON, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.fixture
def expanded_dir(tmp_path):
    """A tiny masked LM with three appended characters, saved like `vocab expand` does, and a corpus."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, expanded, report = expand_vocabulary(BertForMaskedLM(tiny_bert_config()), tokenizer, ["在", "读", "书"],
                                                mode="append", seed=0)
    save_expanded(model, expanded, report, tmp_path / "expanded")
    lines = ["朱元璋在北京读书", "李在上海读书", "the bank in paris", "", "王在北京银行"] * 8
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def common_args(folder, out, steps):
    return ["--model_name_or_path", folder / "expanded", "--train_files", folder / "train.txt",
            "--validation_file", folder / "train.txt", "--output_dir", out, "--do_train", "--max_steps", steps,
            "--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 8, "--learning_rate", 1e-3,
            "--report_to", "none", "--seed", 1, "--use_cpu", "--logging_steps", 1, "--max_seq_length", 16]


def run_in_process(args, monkeypatch, cache):
    """The pretraining recipe's main() in this process (it reads sys.argv; no import cost)."""
    run_recipe_in_process(RECIPE, args, monkeypatch, cache)


def test_recipe_trains_saves_and_resumes(expanded_dir, monkeypatch, capsys):
    out = expanded_dir / "full"
    run_recipe(*common_args(expanded_dir, out, 3), "--save_steps", 2, "--word_segmenter", "none")  # as a script
    assert (out / "checkpoint-2").is_dir() and (out / "model.safetensors").exists()
    assert (out / "vocab_expansion.json").exists()
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
    last = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    # Resume from the last checkpoint and go on to step 5: only the remaining steps run.
    capsys.readouterr()
    run_in_process([*common_args(expanded_dir, out, 5), "--save_steps", 2, "--resume_from_checkpoint", "last",
                    "--do_eval"], monkeypatch, expanded_dir / "cache")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4, 5]
    assert capsys.readouterr().out.count("'loss'") == 5 - last
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["eval_loss"]) and results["perplexity"] == pytest.approx(
        math.exp(results["eval_loss"]))
    model = BertForMaskedLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == len(AutoTokenizer.from_pretrained(out))
    with pytest.raises(ValueError, match="no complete checkpoint"):
        run_in_process([*common_args(expanded_dir, expanded_dir / "empty", 1), "--resume_from_checkpoint", "last"],
                       monkeypatch, expanded_dir / "cache")


def load_recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe_flags", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lora_flags_are_the_shared_lora_arguments():
    """The recipe's --lora* flags are hf_bert_tasks.lora.LoraArguments (ner, classify and qa take the same), and
    lora_with_new_tokens defaults to the same settings."""
    module = load_recipe()
    assert module.LoraArguments is LoraArguments
    assert not {f.name for f in dataclasses.fields(module.ModelArguments)} & {
        f.name for f in dataclasses.fields(LoraArguments)}
    defaults = inspect.signature(lora_with_new_tokens).parameters
    shared = LoraArguments()
    assert (defaults["r"].default, defaults["alpha"].default, defaults["dropout"].default) == (
        shared.lora_r, shared.lora_alpha, shared.lora_dropout) == (8, 16.0, 0.1)
    assert defaults["target_modules"].default is shared.lora_target_modules is None
    # Default targets: the encoder's attention and feed-forward layers, never the head's transform.dense.
    peft_model = lora_with_new_tokens(BertForMaskedLM(tiny_bert_config()), [40])
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in peft_model.named_parameters() if ".lora_A" in name}
    assert {name.split(".")[-1] for name in adapted} == {"query", "key", "value", "dense"}
    assert all(".bert.encoder." in name for name in adapted), adapted
    assert len(adapted) == 2 * 6  # per layer: q, k, v, attention output, intermediate, output
    with pytest.raises(ValueError, match=r"\['attention'\] match no linear layer"):
        lora_with_new_tokens(BertForMaskedLM(tiny_bert_config()), [40], target_modules=["attention"])


def test_adaptation_is_a_deprecated_alias_of_lora():
    module = load_recipe()
    for value, lora in (("lora", True), ("full", False)):
        model_args, lora_args = module.ModelArguments("m", adaptation=value), LoraArguments()
        with pytest.warns(FutureWarning, match="--adaptation is deprecated"):
            module.resolve_adaptation(model_args, lora_args)
        assert lora_args.lora is lora
    model_args, lora_args = module.ModelArguments("m"), LoraArguments(lora=True)
    module.resolve_adaptation(model_args, lora_args)  # no warning without the old flag
    assert lora_args.lora
    with pytest.raises(ValueError, match="--adaptation must be full or lora, got 'adapters'"):
        module.resolve_adaptation(module.ModelArguments("m", adaptation="adapters"), LoraArguments())


def test_recipe_lora_on_new_rows(expanded_dir, monkeypatch):
    out = expanded_dir / "lora"
    args = [*common_args(expanded_dir, out, 3), "--lora", "--save_strategy", "no", "--lora_r", 4,
            "--lora_target_modules", "query,value"]
    run_in_process(args, monkeypatch, expanded_dir / "cache")
    before = BertForMaskedLM.from_pretrained(expanded_dir / "expanded").state_dict()
    after = BertForMaskedLM.from_pretrained(out).state_dict()
    new_ids = json.loads((expanded_dir / "expanded" / "vocab_expansion.json").read_text())["added"]
    embedding = "bert.embeddings.word_embeddings.weight"
    changed_rows = (after[embedding] != before[embedding]).any(1).nonzero().flatten().tolist()
    assert changed_rows == [entry["id"] for entry in new_ids]
    assert not torch.equal(after["bert.encoder.layer.1.attention.self.value.weight"],
                           before["bert.encoder.layer.1.attention.self.value.weight"])
    assert torch.equal(after["bert.encoder.layer.1.output.dense.weight"],
                       before["bert.encoder.layer.1.output.dense.weight"])
    assert not any(p.name.startswith("adapter") for p in out.iterdir())  # a plain model folder, LoRA merged


def test_recipe_lora_saves_the_adapter_when_asked(expanded_dir, monkeypatch):
    out = expanded_dir / "lora-adapter"
    args = [*common_args(expanded_dir, out, 2), "--adaptation", "lora", "--save_strategy", "no",
            "--lora_save", "adapter"]
    with pytest.warns(FutureWarning, match="--adaptation is deprecated: use --lora"):
        run_in_process(args, monkeypatch, expanded_dir / "cache")
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16 and adapter["lora_dropout"] == 0.1
    assert adapter["modules_to_save"] == ["cls.predictions.transform"]
    assert not (out / "model.safetensors").exists()
