"""hf_bert_tasks.lora: what is trained, what is saved, and that both saved forms reproduce the adapted model."""

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AlbertConfig,
    AutoModelForTokenClassification,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    CamembertConfig,
    DistilBertConfig,
    ElectraConfig,
    HfArgumentParser,
    MPNetConfig,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
)

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer, without_package
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.lora import (
    LoraArguments,
    apply_lora,
    default_target_modules,
    load_adapter,
    new_layer_names,
    save_adapter,
    save_merged,
    trainable_parameters,
)
from hf_bert_tasks.ner.predictor import NerPredictor

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
SMALL = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
ENCODERS = {
    "bert": lambda: tiny_bert_config(),
    "roberta": lambda: RobertaConfig(**SMALL),
    "xlm-roberta": lambda: XLMRobertaConfig(**SMALL),
    "camembert": lambda: CamembertConfig(**SMALL),
    "albert": lambda: AlbertConfig(embedding_size=16, **SMALL),
    "electra": lambda: ElectraConfig(embedding_size=16, **SMALL),
    "distilbert": lambda: DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
}


def crf_model(encoder=None, seed=0, **kwargs) -> BertCrfForTokenClassification:
    torch.manual_seed(seed)
    config = BertCrfConfig(encoder=encoder or tiny_bert_config(), id2label=dict(enumerate(LABELS)),
                           label2id={label: i for i, label in enumerate(LABELS)}, **kwargs)
    return BertCrfForTokenClassification(config)


def crf_model_on(encoder_dir, seed=0, **kwargs) -> BertCrfForTokenClassification:
    torch.manual_seed(seed)
    return BertCrfForTokenClassification.from_encoder(str(encoder_dir), LABELS, **kwargs)


def batch(seed=1, size=3, length=10):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 100, (size, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    tag_mask = attention_mask.bool().clone()
    tag_mask[:, 0] = False  # [CLS]
    labels = torch.randint(0, len(LABELS), (size, length), generator=generator)
    labels = torch.where(labels % 2 == 1, labels, 0)  # B- tags and O only: every sequence is legal BIO
    labels[~tag_mask] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_a_few_steps(peft_model, steps=3):
    """A few AdamW steps on every trainable parameter, with a large learning rate so every one of them moves."""
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    for step in range(steps):
        loss = peft_model(**batch(seed=step)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return peft_model.eval()


def logits_and_tags(model, inputs):
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    return logits, model.decode(logits, inputs["labels"] != -100)


def test_only_lora_matrices_and_new_layers_train():
    model = crf_model(use_bilstm=True, lstm_hidden_size=16)
    assert new_layer_names(model) == ["bilstm", "classifier", "crf"]
    peft_model = apply_lora(model, r=4)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    encoder_linears = [name for name, module in model.encoder.named_modules()
                       if name.rsplit(".", 1)[-1] in ("query", "key", "value", "dense")]
    assert len(encoder_linears) == 12  # 2 layers x (q, k, v, attention output, FFN in, FFN out)
    expected = {f"base_model.model.encoder.{name}.lora_{ab}.default.weight"
                for name in encoder_linears for ab in "AB"}
    for layer in ("bilstm", "classifier", "crf"):
        expected |= {f"base_model.model.{layer}.modules_to_save.default.{name}"
                     for name, _ in getattr(model, layer).original_module.named_parameters()}
    assert trainable == expected
    n_trainable, n_total = trainable_parameters(peft_model)
    assert n_trainable == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert n_trainable < n_total / 3

    # The CRF loss trains the CRF's copy (peft forwards `crf.log_likelihood` to it), never the frozen original.
    peft_model.train()
    peft_model(**batch()).loss.backward()
    assert model.crf.modules_to_save["default"].transitions.grad.abs().sum() > 0
    assert model.crf.original_module.transitions.grad is None
    assert model.bilstm.modules_to_save["default"].lstm.weight_ih_l0.grad.abs().sum() > 0
    lora_b = model.encoder.encoder.layer[0].attention.self.query.lora_B["default"].weight
    assert lora_b.grad.abs().sum() > 0
    assert all(p.grad is None for name, p in peft_model.named_parameters() if not p.requires_grad)


def test_adapter_reloads_on_a_fresh_base_with_identical_outputs(tiny_encoder_dir, tmp_path):
    peft_model = train_a_few_steps(apply_lora(crf_model_on(tiny_encoder_dir, use_bilstm=True, lstm_hidden_size=16)))
    inputs = batch(seed=7)
    logits, tags = logits_and_tags(peft_model, inputs)
    save_adapter(peft_model, tmp_path / "adapter", tiny_tokenizer())
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert not any(key.startswith("base_model.model.encoder.") and "lora_" not in key for key in saved)
    assert sum(t.numel() for t in saved.values()) < sum(p.numel() for p in peft_model.parameters()) / 3

    # From the encoder folder (the task model is rebuilt from the adapter's config) and from a model object whose
    # new layers were initialised differently (seed 5): the adapter's copies replace them.
    for base in (tiny_encoder_dir, crf_model_on(tiny_encoder_dir, seed=5, use_bilstm=True, lstm_hidden_size=16)):
        reloaded = load_adapter(base, tmp_path / "adapter").eval()
        reloaded_logits, reloaded_tags = logits_and_tags(reloaded, inputs)
        torch.testing.assert_close(reloaded_logits, logits, rtol=0, atol=0)
        assert torch.equal(reloaded_tags, tags)


def test_trained_crf_and_bilstm_are_in_the_adapter(tiny_encoder_dir, tmp_path):
    peft_model = apply_lora(crf_model_on(tiny_encoder_dir, use_bilstm=True, lstm_hidden_size=16))
    model = peft_model.get_base_model()
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters() if p.requires_grad}
    train_a_few_steps(peft_model)
    trained = {}
    for layer in ("crf", "bilstm", "classifier"):
        for name, p in getattr(model, layer).modules_to_save["default"].named_parameters():
            key = f"base_model.model.{layer}.modules_to_save.default.{name}"
            assert not torch.equal(p, before[key]), f"{layer}.{name} did not change in training"
            trained[f"{layer}.{name}"] = p.detach().clone()
    save_adapter(peft_model, tmp_path / "adapter")

    reloaded = load_adapter(tiny_encoder_dir, tmp_path / "adapter").get_base_model()
    fresh = crf_model_on(tiny_encoder_dir, use_bilstm=True, lstm_hidden_size=16)
    for key, value in trained.items():
        layer, name = key.split(".", 1)
        assert torch.equal(getattr(reloaded, layer).modules_to_save["default"].get_parameter(name), value), key
        assert not torch.equal(getattr(fresh, layer).get_parameter(name), value), key


def test_merged_folder_loads_without_the_package_and_matches(tiny_encoder_dir, tmp_path):
    peft_model = train_a_few_steps(apply_lora(crf_model_on(tiny_encoder_dir, use_bilstm=True, lstm_hidden_size=16)))
    inputs = batch(seed=11)
    logits, tags = logits_and_tags(peft_model, inputs)
    folder = save_merged(peft_model, tmp_path / "merged", tiny_tokenizer())
    # The adapted model is untouched by the merge (it runs on a copy).
    torch.testing.assert_close(logits_and_tags(peft_model, inputs)[0], logits, rtol=0, atol=0)

    assert not list(folder.glob("*.bin")) and not (folder / "adapter_config.json").exists()
    keys = load_file(folder / "model.safetensors").keys()
    assert not [k for k in keys if k.startswith("base_model.") or "modules_to_save" in k or "lora_" in k
                or "original_module" in k or "base_layer" in k]
    assert {"crf.transitions", "bilstm.lstm.weight_ih_l0", "classifier.weight"} <= set(keys)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForTokenClassification"].startswith("modeling_bert_crf.")

    torch.save(inputs, tmp_path / "inputs.pt")
    script = without_package(f"""
        import torch
        from transformers import AutoModelForTokenClassification
        model = AutoModelForTokenClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        tags = model.decode(logits, inputs["labels"] != -100)
        torch.save({{"logits": logits, "tags": tags}}, {str(tmp_path / "out.pt")!r})
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(remote["logits"], logits, rtol=0, atol=1e-5)
    assert torch.equal(remote["tags"], tags)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_default_targets_exist_in_every_encoder_family(name):
    model = crf_model(encoder=ENCODERS[name]())
    targets = default_target_modules(model)
    linears = {n: m for n, m in model.encoder.named_modules() if isinstance(m, torch.nn.Linear)}
    for target in targets:
        assert any(n.rsplit(".", 1)[-1] == target for n in linears), f"{name}: no layer named {target}"
    peft_model = apply_lora(model)
    adapted = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    expected = {f"encoder.{n}" for n in linears if n.rsplit(".", 1)[-1] in targets}
    assert adapted == expected
    # Attention (q, k, v, output) and both feed-forward layers of every layer (ALBERT: the one shared layer).
    layers = 1 if name == "albert" else 2
    assert len(adapted) == 6 * layers
    assert trainable_parameters(peft_model)[0] > 0


def test_transformers_heads_keep_their_head_out_of_lora():
    torch.manual_seed(0)
    token = apply_lora(BertForTokenClassification(tiny_bert_config(num_labels=5)))
    # The head is saved in full, named once (peft adds its own defaults for the task type, which vary by version).
    saved = token.peft_config["default"].modules_to_save
    assert "classifier" in saved and len(saved) == len(set(saved))
    trainable = [n for n, p in token.named_parameters() if p.requires_grad and "lora_" not in n]
    assert trainable and all(".classifier.modules_to_save.default." in n for n in trainable)
    # RoBERTa's classification head has a `dense` layer of its own: it is trained in full, never adapted.
    sequence_model = RobertaForSequenceClassification(RobertaConfig(num_labels=3, **SMALL))
    sequence = apply_lora(sequence_model)
    adapted = [n for n, m in sequence_model.named_modules() if hasattr(m, "lora_A")]
    assert adapted and all(n.startswith("roberta.encoder.") for n in adapted)
    trainable = [n for n, p in sequence.named_parameters() if p.requires_grad and "lora_" not in n]
    assert trainable and all(".classifier.modules_to_save.default." in n for n in trainable)


@pytest.mark.parametrize("head", [BertForSequenceClassification, BertForQuestionAnswering])
def test_adapted_heads_see_the_segment_ids_and_merge_exactly(head, tmp_path):
    # peft's own question-answering wrapper drops token_type_ids; apply_lora must not lose them for any head.
    torch.manual_seed(0)
    peft_model = apply_lora(head(tiny_bert_config(num_labels=3 if head is BertForSequenceClassification else 2)))
    with torch.no_grad():
        for parameter in peft_model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    peft_model.eval()
    input_ids = torch.randint(5, 50, (2, 12))
    segments = torch.zeros_like(input_ids)
    segments[:, 6:] = 1
    merged = head.from_pretrained(save_merged(peft_model, tmp_path / "merged")).eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=input_ids, token_type_ids=segments)
        reloaded = merged(input_ids=input_ids, token_type_ids=segments)
        without_segments = merged(input_ids=input_ids)
    first = "logits" if head is BertForSequenceClassification else "start_logits"
    torch.testing.assert_close(adapted[first], reloaded[first], rtol=0, atol=1e-5)
    assert not torch.allclose(adapted[first], without_segments[first], atol=1e-3)


def test_unknown_encoder_and_wrong_names_are_clear_errors():
    model = crf_model(encoder=MPNetConfig(**SMALL))
    with pytest.raises(ValueError, match=r"'mpnet'.*--lora_target_modules"):
        default_target_modules(model)
    with pytest.raises(ValueError, match=r"\['query'\] match no linear layer.*'q'"):
        apply_lora(model, target_modules=["query", "q"])
    peft_model = apply_lora(model, target_modules=["q", "k", "v", "o"])
    assert len([m for m in model.modules() if hasattr(m, "lora_A")]) == 8
    with pytest.raises(ValueError, match="already has peft adapters"):
        apply_lora(peft_model)
    for bad in (dict(r=0), dict(alpha=0), dict(dropout=1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            apply_lora(crf_model(), **bad)


def test_trainable_token_rows_are_trained_and_merged(tiny_encoder_dir, tmp_path):
    """Tokens added to the vocabulary need trained embeddings; the rest of the matrix stays frozen."""
    inputs = batch(seed=3)
    used, unused = 7, next(i for i in range(5, 100) if i != 7 and i not in inputs["input_ids"])
    inputs["input_ids"][:, 1] = used
    peft_model = apply_lora(crf_model_on(tiny_encoder_dir), trainable_token_indices=[used, unused])
    embeddings = crf_model_on(tiny_encoder_dir).encoder.embeddings.word_embeddings.weight.detach().clone()
    peft_model.train()
    # No weight decay: peft stores the trainable rows themselves (not a delta from zero), decay would move them all.
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=0.05, weight_decay=0.0)
    for _ in range(3):
        peft_model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    logits, _ = logits_and_tags(peft_model.eval(), inputs)
    merged = save_merged(peft_model, tmp_path / "merged")
    reloaded = AutoModelForTokenClassification.from_pretrained(merged, trust_remote_code=True).eval()
    new_embeddings = reloaded.encoder.embeddings.word_embeddings.weight.detach()
    changed = (new_embeddings != embeddings).any(dim=1).nonzero().flatten().tolist()
    assert changed == [used]  # `unused` gets no gradient: AdamW leaves it where it was
    torch.testing.assert_close(logits_and_tags(reloaded, inputs)[0], logits, rtol=0, atol=1e-5)


def test_recipe_with_lora_saves_a_merged_model_and_an_adapter(tiny_encoder_dir, tmp_path):
    sample = ROOT / "hf_bert_tasks" / "sample_data"
    out = tmp_path / "lora"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [PYTHON, str(ROOT / "recipes" / "ner.py"), "--model_name_or_path", str(tiny_encoder_dir),
         "--output_dir", str(out), "--train_file", str(sample / "en_train.conll"),
         "--validation_file", str(sample / "en_dev.conll"), "--do_train", "--do_eval", "--max_train_samples", "32",
         "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--save_strategy", "no",
         "--report_to", "none", "--use_cpu", "--seed", "1", "--bilstm", "--lstm_hidden_size", "16",
         "--lora", "--lora_r", "4", "--lora_target_modules", "query,value", "dense", "--lora_save", "both"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert 0.0 <= json.loads((out / "all_results.json").read_text())["eval_f1"] <= 1.0
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["task_type"] == "TOKEN_CLS"
    assert {"classifier", "crf", "bilstm"} <= set(adapter_config["modules_to_save"])
    assert not (out / "adapter_config.json").exists()

    predictor = NerPredictor.from_pretrained(str(out))
    entities = predictor("John Smith visited Paris on Monday.")
    assert all({"type", "text", "start", "end", "score"} <= set(e) for e in entities)
    merged = predictor.model
    # Training moved exactly the weight matrices of the adapted layers (query, value, dense); their biases, key,
    # embeddings and layer norms are the pretrained weights, bit for bit.
    pretrained = BertModel.from_pretrained(tiny_encoder_dir).state_dict()
    for name, value in merged.encoder.state_dict().items():
        layer, kind = name.rsplit(".", 2)[-2:]
        adapted = layer in ("query", "value", "dense") and kind == "weight"
        assert torch.equal(value, pretrained[name]) != adapted, name
    adapted = load_adapter(tiny_encoder_dir, out / "adapter").eval()
    inputs = batch(seed=2)
    merged_logits, merged_tags = logits_and_tags(merged, inputs)
    adapted_logits, adapted_tags = logits_and_tags(adapted, inputs)
    torch.testing.assert_close(merged_logits, adapted_logits, rtol=0, atol=1e-5)
    assert torch.equal(merged_tags, adapted_tags)


def test_lora_arguments_document_and_check_the_flags():
    import dataclasses

    help_text = HfArgumentParser(LoraArguments).format_help()  # the --lora* flags of every recipe
    for field in dataclasses.fields(LoraArguments):
        assert f"--{field.name}" in help_text and field.metadata.get("help"), field.name
    assert LoraArguments(lora_target_modules=["query,key", "value"]).lora_target_modules == ["query", "key", "value"]
    with pytest.raises(ValueError, match="--lora_save must be merged, adapter or both"):
        LoraArguments(lora_save="full")
