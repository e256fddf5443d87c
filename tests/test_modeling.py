import itertools
import json
import subprocess

import pytest
import torch
from transformers import (
    AlbertConfig,
    AutoModel,
    AutoModelForTokenClassification,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)

from conftest import PYTHON, tiny_bert_config, without_package
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.modeling.modeling_bert_crf import compact_positions

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def make_model(encoder=None, **kwargs) -> BertCrfForTokenClassification:
    torch.manual_seed(0)
    config = BertCrfConfig(
        encoder=encoder or tiny_bert_config(), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, **kwargs,
    )
    return BertCrfForTokenClassification(config).eval()


def random_batch(vocab_size=100, batch=3, length=9, seed=1):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch, length), generator=generator)
    lengths = torch.tensor([length, length - 3, 4])[:batch]
    attention_mask = (torch.arange(length)[None] < lengths[:, None]).long()
    # label the even positions inside the sentence, except [CLS] (0) and the last token
    tag_mask = attention_mask.bool() & (torch.arange(length)[None] % 2 == 1) & (torch.arange(length)[None] < lengths[:, None] - 1)
    labels = torch.full((batch, length), -100)
    labels[tag_mask] = 0  # all "O": always a legal path
    return input_ids, attention_mask, tag_mask, labels


def test_compact_positions_matches_python_loop():
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(6, 11, generator=generator) > 0.5
    mask[2] = False
    index, compact = compact_positions(mask)
    for row in range(6):
        expected = mask[row].nonzero().flatten().tolist()
        assert compact[row].sum() == len(expected)
        assert index[row][compact[row]].tolist() == expected
        assert compact[row].tolist() == sorted(compact[row].tolist(), reverse=True)  # right-padded


def test_forward_loss_and_gradients_reach_every_part():
    model = make_model(use_bilstm=True, lstm_hidden_size=16).train()
    input_ids, attention_mask, tag_mask, labels = random_batch()
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 9, len(LABELS))
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    for name in ("crf.transitions", "classifier.weight", "bilstm.lstm.weight_ih_l0",
                 "encoder.embeddings.word_embeddings.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_loss_equals_crf_on_gathered_words():
    """The CRF sees the labelled positions only, starting at 0: compare with gathering by hand."""
    model = make_model()
    input_ids, attention_mask, tag_mask, labels = random_batch()
    labels[0, 1], labels[0, 3] = 3, 4  # B-PER I-PER
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    losses = []
    for row in range(3):
        positions = tag_mask[row].nonzero().flatten()
        emissions = out.logits[row, positions][None]
        tags = labels[row, positions][None]
        losses.append(-model.crf.log_likelihood(emissions, tags, torch.ones_like(tags, dtype=torch.bool)))
    torch.testing.assert_close(out.loss, torch.cat(losses).mean())


def test_rows_without_labels_add_no_loss_and_decode_to_nothing():
    model = make_model()
    input_ids, attention_mask, tag_mask, labels = random_batch()
    labels[1] = -100
    tag_mask[1] = False
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    expected = model(input_ids=input_ids[[0, 2]], attention_mask=attention_mask[[0, 2]], labels=labels[[0, 2]]).loss
    torch.testing.assert_close(out.loss, expected)
    decoded = model.decode(out.logits, tag_mask)
    assert (decoded[1] == -100).all()
    assert ((decoded != -100) == tag_mask).all()
    assert model(input_ids=input_ids, labels=torch.full_like(labels, -100)).loss.item() == 0.0


def brute_force(model, emissions):
    """Best path and tag marginals of one sequence by enumerating every tag sequence under the model's CRF."""
    crf = model.crf
    k = emissions.shape[-1]
    big_negative = -10000.0
    start = crf.start_transitions.masked_fill(~crf.start_allowed, big_negative)
    end = crf.end_transitions.masked_fill(~crf.end_allowed, big_negative)
    trans = crf.transitions.masked_fill(~crf.transition_allowed, big_negative)
    scores = {}
    for path in itertools.product(range(k), repeat=emissions.shape[0]):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        score = score + sum(trans[a, b] for a, b in zip(path, path[1:]))
        scores[path] = score
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    best = max(scores, key=lambda p: scores[p])
    marginals = torch.zeros(emissions.shape)
    for path, score in scores.items():
        for t, y in enumerate(path):
            marginals[t, y] += torch.exp(score - log_z)
    return list(best), marginals


def test_decode_and_tag_probabilities_match_brute_force():
    model = make_model()
    with torch.no_grad():
        model.crf.transitions.normal_(0, 1)
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, len(LABELS), generator=generator) * 2
    tag_mask = torch.tensor([[0, 1, 1, 0, 1, 0], [0, 1, 0, 1, 0, 0]], dtype=torch.bool)
    decoded = model.decode(logits, tag_mask)
    probabilities = model.tag_probabilities(logits, tag_mask, decoded.clamp(min=0))
    for row in range(2):
        positions = tag_mask[row].nonzero().flatten()
        best, marginals = brute_force(model, logits[row, positions])
        assert decoded[row, positions].tolist() == best
        expected = marginals[torch.arange(len(best)), torch.tensor(best)]
        torch.testing.assert_close(probabilities[row, positions], expected, atol=1e-5, rtol=1e-4)
        assert (probabilities[row][~tag_mask[row]] == 0).all()


def test_decode_returning_probabilities_matches_the_separate_calls():
    """The predictors' one call (`return_probabilities=True`) gives the path of `decode` and the marginals of
    `tag_probabilities`, with rows that have no labelled position (kept out of the CRF) among the others."""
    model = make_model()
    with torch.no_grad():
        model.crf.transitions.normal_(0, 1)
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 7, len(LABELS), generator=generator) * 2
    tag_mask = torch.tensor([[0, 1, 1, 0, 1, 0, 0], [0] * 7, [0, 1, 0, 1, 1, 1, 0], [0] * 7], dtype=torch.bool)
    for mask in (tag_mask, tag_mask[[0, 2]], tag_mask[[1, 3]]):
        rows = logits[: len(mask)]
        tags, probabilities = model.decode(rows, mask, return_probabilities=True)
        assert torch.equal(tags, model.decode(rows, mask))
        torch.testing.assert_close(probabilities, model.tag_probabilities(rows, mask, tags.clamp(min=0)))
        assert (tags[~mask] == -100).all() and (probabilities[~mask] == 0).all()
        for row in mask.any(dim=1).nonzero().flatten().tolist():
            positions = mask[row].nonzero().flatten()
            best, marginals = brute_force(model, rows[row, positions])
            assert tags[row, positions].tolist() == best
            expected = marginals[torch.arange(len(best)), torch.tensor(best)]
            torch.testing.assert_close(probabilities[row, positions], expected, atol=1e-5, rtol=1e-4)


def test_constrained_decoding_never_produces_illegal_bio():
    model = make_model()
    logits = torch.randn(16, 20, len(LABELS)) * 5
    logits[..., LABELS.index("I-PER")] += 8  # tempt the decoder with I-PER everywhere
    decoded = model.decode(logits, torch.ones(16, 20, dtype=torch.bool))
    for row in decoded.tolist():
        previous = "O"
        for tag in (LABELS[t] for t in row):
            if tag.startswith("I-"):
                assert previous in (f"B-{tag[2:]}", tag), (previous, tag)
            previous = tag


def test_tag_mask_pointing_at_unlabelled_position_is_an_error():
    model = make_model()
    input_ids, attention_mask, tag_mask, labels = random_batch()
    with pytest.raises(ValueError, match="-100"):
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, tag_mask=attention_mask.bool())


@pytest.mark.parametrize(
    "encoder",
    [
        tiny_bert_config(),
        RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130, pad_token_id=1),
        AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64),
        ElectraConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64),
        DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
    ],
    ids=["bert", "roberta", "albert", "electra", "distilbert"],
)
def test_every_encoder_family_trains_saves_and_reloads_bit_exact(encoder, tmp_path):
    model = make_model(encoder=encoder)
    input_ids, attention_mask, tag_mask, labels = random_batch()
    model.train()
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is BertCrfForTokenClassification
    state, restored = model.state_dict(), reloaded.state_dict()
    assert state.keys() == restored.keys()
    for name in state:
        assert torch.equal(state[name], restored[name]), name
    with torch.no_grad():
        a = model(input_ids=input_ids, attention_mask=attention_mask).logits
        b = reloaded(input_ids=input_ids, attention_mask=attention_mask).logits
    assert torch.equal(a, b)
    assert torch.equal(model.decode(a, tag_mask), reloaded.decode(b, tag_mask))


def test_from_encoder_keeps_pretrained_weights_and_initialises_the_head(tiny_encoder_dir):
    reference = AutoModel.from_pretrained(tiny_encoder_dir)
    model = BertCrfForTokenClassification.from_encoder(str(tiny_encoder_dir), LABELS, use_bilstm=True,
                                                       lstm_hidden_size=16)
    for name, value in reference.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(model.encoder.state_dict()[name], value), name
    assert model.crf.transitions.abs().max() <= 0.1 and model.crf.transitions.abs().max() > 0
    assert model.classifier.weight.std() < 0.1
    assert not model.crf.start_allowed[LABELS.index("I-PER")]  # constraints from the label list


def test_remote_code_loads_without_the_package(tmp_path):
    """The saved folder must load with trust_remote_code=True where hf_bert_tasks cannot be imported."""
    model = make_model(use_bilstm=True, lstm_hidden_size=16)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForTokenClassification"}
    for name in ("configuration_bert_crf.py", "modeling_bert_crf.py", "crf.py", "schemes.py"):
        assert (tmp_path / "model" / name).exists(), name
    input_ids, attention_mask, tag_mask, _ = random_batch()
    torch.save({"input_ids": input_ids, "attention_mask": attention_mask, "tag_mask": tag_mask},
               tmp_path / "inputs.pt")
    script = without_package(f"""
        import torch
        from transformers import AutoModel, AutoModelForTokenClassification
        path = {str(tmp_path / "model")!r}
        model = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        plain = AutoModel.from_pretrained(path, trust_remote_code=True)
        assert type(plain).__name__ == "BertCrfForTokenClassification"
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        torch.save({{"logits": logits, "tags": model.decode(logits, inputs["tag_mask"])}}, {str(tmp_path / "out.pt")!r})
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert torch.equal(remote["logits"], logits)
    assert torch.equal(remote["tags"], model.decode(logits, tag_mask))


def test_crf_loss_under_bf16_autocast_is_finite_and_matches_float32():
    model = make_model()
    input_ids, attention_mask, tag_mask, labels = random_batch()
    labels[0, 1], labels[0, 3] = 3, 4
    expected = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    assert torch.isfinite(out.loss)
    # The encoder runs in bf16 (about 3 significant digits); the CRF itself adds no further error.
    torch.testing.assert_close(out.loss, expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("edit, words", [
    (lambda c: (c.pop("id2label"), c.pop("label2id")), "id2label and label2id are missing"),
    (lambda c: (c.pop("id2label"), c.pop("label2id"), c.update(num_labels=5)), "LABEL_0 .. LABEL_4"),
    (lambda c: c.update(num_labels=7), "num_labels is 7 but id2label has 5 tags"),
    (lambda c: c.update(label2id={**c["label2id"], "O": 3}), "label2id is not the inverse of id2label"),
    (lambda c: c.update(id2label={str(i + 1): t for i, t in enumerate(LABELS)}), "ids of id2label are [1, 2, 3, 4, 5]"),
    (lambda c: c.pop("id2label"), "label2id is given (5 tags) but id2label is missing"),
])
def test_inconsistent_labels_in_config_json_are_named(tmp_path, edit, words):
    make_model().config.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        BertCrfConfig.from_pretrained(tmp_path)
    message = str(info.value)
    assert message.startswith("the config's labels are inconsistent: ") and words in message
    assert "id2label (id -> tag), label2id (tag -> id) and num_labels" in message


def test_a_config_without_label2id_gets_the_inverse_of_id2label(tmp_path):
    make_model().config.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["label2id"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert BertCrfConfig.from_pretrained(tmp_path).label2id == {label: i for i, label in enumerate(LABELS)}
