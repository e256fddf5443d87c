"""Cheap MLM adaptation (hf_bert_tasks/pretraining/training.py): LoRA on the new rows of an expanded vocabulary,
MaskedPositionsTrainer's loss and gradients against the full loss, token id specs."""

import pytest
import torch
from conftest import tiny_bert_config, tiny_tokenizer
from test_pretraining_inputs import make_batch
from transformers import (
    AlbertConfig,
    AutoModelForMaskedLM,
    BertForMaskedLM,
    BertModel,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    Trainer,
    TrainingArguments,
)

from hf_bert_tasks.pretraining.inputs import WholeWordMaskCollator
from hf_bert_tasks.pretraining.training import (
    MaskedPositionsTrainer,
    expanded_token_ids,
    lora_with_new_tokens,
    mlm_head_modules,
    parse_token_ids,
)
from hf_bert_tasks.vocab import expand_vocabulary


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
