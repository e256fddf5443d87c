"""MLM inputs (hf_bert_tasks/pretraining/inputs.py): word grouping (WordPiece, jieba, a dictionary segmenter, added
words), chunks cut between words, whole-word masking (exact properties on every draw, rates over many draws with a
fixed seed)."""

import math

import pytest
import torch
from conftest import tiny_bert_config, tiny_tokenizer
from transformers import BertModel

from hf_bert_tasks.pretraining.inputs import WholeWordMaskCollator, encode_for_mlm
from hf_bert_tasks.vocab import DictionarySegmenter, expand_vocabulary


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
