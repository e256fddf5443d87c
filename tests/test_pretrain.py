"""hf_bert_tasks.pretraining and recipes/pretrain.py: word grouping, chunking, whole-word masking (exact properties
on every draw, rates over many draws with a fixed seed), LoRA on the new rows, the recipe end to end with resuming."""

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
from transformers import (
    AlbertConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    BertModel,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    Trainer,
    TrainingArguments,
)

from hf_bert_tasks.lora import LoraArguments
from hf_bert_tasks.pretraining.inputs import WholeWordMaskCollator, encode_for_mlm
from hf_bert_tasks.pretraining.training import (
    MaskedPositionsTrainer,
    expanded_token_ids,
    lora_with_new_tokens,
    mlm_head_modules,
    parse_token_ids,
)
from hf_bert_tasks.vocab import DictionarySegmenter, expand_vocabulary, save_expanded

RECIPE = ROOT / "recipes" / "pretrain.py"


def words_of(feature, tokenizer):
    """{word id: [tokens]} of one encoded chunk."""
    words = {}
    for token, word in zip(tokenizer.convert_ids_to_tokens(feature[0]), feature[1]):
        if word >= 0:
            words.setdefault(word, []).append(token)
    return [words[w] for w in sorted(words)]


# ------------------------------------------------------------------------------------------------------------ encoding


def test_wordpiece_continuations_and_segmenter_words_are_grouped():
    tokenizer = tiny_tokenizer()
    encoded = encode_for_mlm(tokenizer, ["banking in paris", "朱元璋在北京银行", ""], max_length=64)
    assert len(encoded["input_ids"]) == 2  # the empty text gives nothing
    rows = list(zip(encoded["input_ids"], encoded["word_ids"]))
    assert words_of(rows[0], tokenizer) == [["bank", "##i", "##n", "##g"], ["in"], ["paris"]]
    assert encoded["word_ids"][0][0] == encoded["word_ids"][0][-1] == -1  # [CLS], [SEP]
    # Without a segmenter each ideograph is a word; [UNK] (在) belongs to none.
    assert words_of(rows[1], tokenizer) == [["朱"], ["元"], ["璋"], ["北"], ["京"], ["银"], ["行"]]
    assert encoded["word_ids"][1][4] == -1
    segmented = encode_for_mlm(tokenizer, ["朱元璋在北京银行"], max_length=64,
                               segmenter=DictionarySegmenter(["朱元璋", "北京", "银行"]))
    assert words_of((segmented["input_ids"][0], segmented["word_ids"][0]), tokenizer) == [
        ["朱", "元", "璋"], ["北", "京"], ["银", "行"]]
    # A segmenter may join pieces but never split a WordPiece word: "bankinginparis" stays whole.
    glued = encode_for_mlm(tokenizer, ["banking paris"], max_length=64, segmenter=lambda t: list(t))
    assert words_of((glued["input_ids"][0], glued["word_ids"][0]), tokenizer) == [
        ["bank", "##i", "##n", "##g"], ["paris"]]


def test_jieba_groups_characters():
    pytest.importorskip("jieba")
    tokenizer = tiny_tokenizer()
    encoded = encode_for_mlm(tokenizer, ["中华人民共和国银行"], max_length=64, segmenter="jieba")
    words = words_of((encoded["input_ids"][0], encoded["word_ids"][0]), tokenizer)
    assert ["".join(w) for w in words] == ["中华人民共和国", "银行"]


def test_added_words_of_an_expanded_vocabulary_are_one_word():
    tokenizer = tiny_tokenizer()
    _, expanded, _ = expand_vocabulary(BertModel(tiny_bert_config()), tokenizer, ["北京", "在"], mode="append")
    encoded = encode_for_mlm(expanded, ["朱元璋在北京"], max_length=64)
    assert words_of((encoded["input_ids"][0], encoded["word_ids"][0]), expanded) == [
        ["朱"], ["元"], ["璋"], ["在"], ["北京"]]


def test_long_texts_are_cut_between_words():
    tokenizer = tiny_tokenizer()
    text = "banking in paris with the bank of london " * 6
    pieces = tokenizer(text, add_special_tokens=False)["input_ids"]
    encoded = encode_for_mlm(tokenizer, [text], max_length=9)
    assert len(encoded["input_ids"]) > 1
    assert all(len(ids) <= 9 for ids in encoded["input_ids"])
    assert [t for ids in encoded["input_ids"] for t in ids[1:-1]] == pieces  # nothing lost, nothing repeated
    for ids, words in zip(encoded["input_ids"], encoded["word_ids"]):
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.convert_ids_to_tokens(ids[1])[:2] != "##"  # chunks start at a word
        assert words[1:-1] == sorted(words[1:-1]) and words[1] == 0
    with pytest.raises(ValueError, match="max_length"):
        encode_for_mlm(tokenizer, [text], max_length=2)


# ------------------------------------------------------------------------------------------------------------- masking


def make_batch(tokenizer, texts, segmenter=None):
    encoded = encode_for_mlm(tokenizer, texts, max_length=128, segmenter=segmenter)
    return [{"input_ids": i, "word_ids": w} for i, w in zip(encoded["input_ids"], encoded["word_ids"])]


TEXTS = ["banking in paris with the bank of london and the city of berlin on monday",
         "朱元璋在北京建立中华人民共和国银行，李王张在上海开国",
         "the president told the minister of germany that the world cup final was in tokyo"]
SEGMENTER = DictionarySegmenter(["朱元璋", "北京", "建立", "中华人民共和国", "银行", "上海", "开国"])


def check_exact(batch, features, tokenizer, collator):
    """Properties every draw must have; returns per masked word its outcome ("mask", "random", "keep")."""
    outcomes = []
    special = set(tokenizer.all_special_ids)
    for row, feature in enumerate(features):
        ids, words = torch.tensor(feature["input_ids"]), torch.tensor(feature["word_ids"])
        n = len(ids)
        masked, labels = batch["input_ids"][row, :n], batch["labels"][row, :n]
        assert (batch["labels"][row, n:] == -100).all() and (batch["attention_mask"][row, n:] == 0).all()
        chosen = labels != -100
        assert torch.equal(labels[chosen], ids[chosen])  # labels are the original ids
        assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else changes
        assert not chosen[words < 0].any()  # special tokens and [UNK] are never masked
        assert all(ids[i].item() not in special for i in chosen.nonzero().flatten().tolist())
        word_set = sorted(set(words[words >= 0].tolist()))
        k = 0
        for word in word_set:
            positions = words == word
            if not chosen[positions].any():
                continue
            assert chosen[positions].all()  # whole words
            k += 1
            if (masked[positions] == tokenizer.mask_token_id).all():
                outcomes.append("mask")
            elif torch.equal(masked[positions], ids[positions]):
                outcomes.append("keep")
            else:
                assert (masked[positions] != tokenizer.mask_token_id).all()
                assert all(t in set(collator.random_ids.tolist()) for t in masked[positions].tolist())
                outcomes.append("random")
        expected = collator.mlm_probability * len(word_set)
        assert max(1, math.floor(expected)) <= k <= max(1, math.ceil(expected))  # stochastic rounding, >= 1
    return outcomes


def test_whole_word_masking_exact_properties_and_rates_over_many_draws():
    tokenizer = tiny_tokenizer()
    features = make_batch(tokenizer, TEXTS, SEGMENTER)
    collator = WholeWordMaskCollator(tokenizer, seed=0)
    outcomes, masked_words, words = [], 0, 0
    num_words = [len({w for w in f["word_ids"] if w >= 0}) for f in features]
    draws = 2000
    for _ in range(draws):
        batch = collator(features)
        outcome = check_exact(batch, features, tokenizer, collator)
        outcomes += outcome
        masked_words += len(outcome)
        words += sum(num_words)
    # Stochastic rounding: E[k] = 0.15 n exactly (every row has n >= 7, so the minimum of one never binds).
    assert min(num_words) >= 7
    rate = masked_words / words
    assert abs(rate - 0.15) < 0.002, rate  # about 4 standard deviations
    counts = {o: outcomes.count(o) / len(outcomes) for o in ("mask", "random", "keep")}
    sigma = math.sqrt(0.1 * 0.9 / len(outcomes))
    assert abs(counts["mask"] - 0.8) < 4 * math.sqrt(0.16 / len(outcomes)), counts
    # A random replacement can draw the original token back (1 in ~180 here): it then counts as "keep".
    assert abs(counts["random"] - 0.1) < 4 * sigma + 0.001, counts
    assert abs(counts["keep"] - 0.1) < 4 * sigma + 0.001, counts


def test_stochastic_rounding_of_the_word_count():
    # 10 words at 15%: k = floor(1.5 + u) is 1 or 2, each half the time.
    tokenizer = tiny_tokenizer()
    feature = make_batch(tokenizer, ["the a of in to and on at for with"])
    assert len(set(feature[0]["word_ids"])) == 11  # ten words and -1
    collator = WholeWordMaskCollator(tokenizer, seed=1)
    ks = [int((collator(feature)["labels"] != -100).sum()) for _ in range(2000)]
    assert set(ks) == {1, 2}
    assert abs(ks.count(2) / 2000 - 0.5) < 4 * math.sqrt(0.25 / 2000)
    # One word: always masked (at least one per sequence).
    one = make_batch(tokenizer, ["paris"])
    assert all((collator(one)["labels"][0] != -100).sum() == 1 for _ in range(20))


def test_seeded_collator_is_reproducible_and_pads():
    tokenizer = tiny_tokenizer()
    features = make_batch(tokenizer, TEXTS, SEGMENTER)
    a = WholeWordMaskCollator(tokenizer, seed=5, pad_to_multiple_of=8)(features)
    b = WholeWordMaskCollator(tokenizer, seed=5, pad_to_multiple_of=8)(features)
    c = WholeWordMaskCollator(tokenizer, seed=6, pad_to_multiple_of=8)(features)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["labels"], c["labels"])
    assert a["input_ids"].shape[1] % 8 == 0
    assert set(a) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    lengths = [len(f["input_ids"]) for f in features]
    assert a["attention_mask"].sum(1).tolist() == lengths
    assert (a["input_ids"][a["attention_mask"] == 0] == tokenizer.pad_token_id).all()


def test_bad_collator_input():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="remove_unused_columns"):
        WholeWordMaskCollator(tokenizer)([{"input_ids": [2, 5, 3]}])
    with pytest.raises(ValueError, match="mlm_probability"):
        WholeWordMaskCollator(tokenizer, mlm_probability=1.5)
    with pytest.raises(ValueError, match="<= 1"):
        WholeWordMaskCollator(tokenizer, mask_replace_prob=0.8, random_replace_prob=0.3)
    with pytest.raises(ValueError, match="word_ids"):
        WholeWordMaskCollator(tokenizer)([{"input_ids": [2, 5, 3], "word_ids": [-1, 0]}])


# ---------------------------------------------------------------------------------------------------- cheap adaptation


def test_lora_trains_only_new_rows_adapters_and_the_head_transform():
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, expanded, report = expand_vocabulary(BertForMaskedLM(tiny_bert_config()), tokenizer, ["在", "读", "书"],
                                                mode="append", seed=0)
    assert mlm_head_modules(model) == ["cls.predictions.transform"]
    assert mlm_head_modules(BertModel(tiny_bert_config())) == []
    before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = lora_with_new_tokens(model, report.new_token_ids, r=4, alpha=8, target_modules=["query", "value"])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    features = make_batch(expanded, ["朱元璋在北京读书", "在在读书"] * 4)
    collator = WholeWordMaskCollator(expanded, seed=0)
    for _ in range(3):
        peft_model(**collator(features)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    merged = peft_model.merge_and_unload()
    after = merged.state_dict()
    embedding = "bert.embeddings.word_embeddings.weight"
    changed_rows = (after[embedding] != before[embedding]).any(1).nonzero().flatten().tolist()
    assert changed_rows == report.new_token_ids
    assert merged.cls.predictions.decoder.weight is merged.get_input_embeddings().weight
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "bert.encoder.layer.0.attention.self.query.weight" in changed
    assert "cls.predictions.transform.dense.weight" in changed
    assert not any("key" in k or "intermediate" in k or k == "cls.predictions.bias" for k in changed), changed
    with pytest.raises(ValueError, match="outside the embedding matrix"):
        lora_with_new_tokens(BertForMaskedLM(tiny_bert_config()), [10_000])


TINY_MASKED_LMS = {
    "bert": lambda: tiny_bert_config(),
    "roberta": lambda: RobertaConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, pad_token_id=1),
    "albert": lambda: AlbertConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64),
    "distilbert": lambda: DistilBertConfig(vocab_size=60, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
    "electra": lambda: ElectraConfig(vocab_size=60, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64),
}


@pytest.mark.parametrize("family", [*TINY_MASKED_LMS, "bert+lora"])
def test_masked_positions_trainer_matches_the_full_loss_and_gradients(family, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(TINY_MASKED_LMS[family.split("+")[0]]())
    if family == "bert+lora":
        model = lora_with_new_tokens(model, [40, 41], target_modules=["query", "value"])
    model.train(False)  # no dropout: the two computations must see the same network
    input_ids = torch.randint(5, 40, (3, 12))
    labels = torch.where(torch.rand(3, 12) < 0.2, torch.randint(5, 40, (3, 12)), -100)
    labels[0, 3] = 7  # at least one scored position
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")

    def loss_and_grads(trainer_class):
        model.zero_grad()
        loss = trainer_class(model=model, args=args).compute_loss(model, dict(inputs))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full_loss, full_grads = loss_and_grads(Trainer)
    loss, grads = loss_and_grads(MaskedPositionsTrainer)
    assert torch.isfinite(full_loss) and torch.allclose(loss, full_loss, atol=1e-6)
    assert grads.keys() == full_grads.keys() and len(grads) > 0
    for name, grad in grads.items():
        assert torch.allclose(grad, full_grads[name], atol=1e-6), name
    # The hook only acts inside compute_loss: a plain forward still scores every position.
    with torch.no_grad():
        assert model(input_ids=input_ids).logits.shape[:2] == (3, 12)


def test_token_id_specs(tmp_path):
    assert parse_token_ids("5, 7,10-12") == [5, 7, 10, 11, 12]
    with pytest.raises(ValueError, match="ranges"):
        parse_token_ids("5,x")
    with pytest.raises(ValueError, match="ranges"):
        parse_token_ids("12-10")
    with pytest.raises(FileNotFoundError, match="vocab_expansion.json"):
        expanded_token_ids(tmp_path)


# -------------------------------------------------------------------------------------------------------------- recipe


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
