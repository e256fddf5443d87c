"""hf_bert_tasks.vocab: mining against brute-force counts, expansion of tokenizers and models (tiny random BERTs;
MiniLM in the slow tests), initialisers checked row by row, the expanded folder reloaded with and without the
package."""

import json
import math
import subprocess
from pathlib import Path
from collections import Counter

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertForMaskedLM, BertModel, BertTokenizer

from conftest import PYTHON, ROOT, minilm_path, tiny_bert_config, tiny_tokenizer, tiny_vocab, without_package
from hf_bert_tasks import BertCrfForTokenClassification
from hf_bert_tasks.vocab import (
    DictionarySegmenter,
    expand_tokenizer,
    expand_vocabulary,
    get_segmenter,
    load_model_for_expansion,
    main,
    mine_tokens,
    tokenization_stats,
)

# Characters of the tiny vocabulary: 明朝建立于年开国皇帝是朱元璋北京上海中华人民共和国银行李王张; unknown: 在读书大学
TEXTS = ["朱元璋在北京读书。", "李在上海读大学，王在北京读书。", "the bank in paris", "在在在北京"]


def tokenizer_with_unused(slots: int = 4) -> BertTokenizer:
    vocab = list(tiny_vocab()) + [f"[unused{i}]" for i in range(slots)]
    return BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})


def model_for(tokenizer, cls=BertModel, **config):
    torch.manual_seed(0)
    return cls(tiny_bert_config(vocab_size=len(tokenizer), **config)).eval()


# --------------------------------------------------------------------------------------------------------------- mining


def test_mine_chars_matches_brute_force_counts_and_stats():
    tokenizer = tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    report = mine_tokens(TEXTS, tokenizer, min_freq=2)
    brute = Counter(ch for text in TEXTS for ch in text.lower() if not ch.isspace() and ch not in vocab)
    expected = sorted((c for c, n in brute.items() if n >= 2), key=lambda c: (-brute[c], c))
    assert report.tokens == expected == ["在", "读", "书"]
    assert report.counts == {c: brute[c] for c in expected}
    assert report.pieces["在"] == ["[UNK]"]
    # Before: every unknown character is one [UNK] piece; after adding the frequent ones only "大", "学" remain.
    pieces = sum(len(tokenizer.tokenize(t)) for t in TEXTS)
    assert report.before["num_unk"] == sum(brute.values())
    assert report.before["unk_rate"] == pytest.approx(sum(brute.values()) / pieces)
    assert report.after["num_unk"] == brute["大"] + brute["学"]
    assert report.after["num_pieces"] == pieces  # one character, one piece, before and after
    assert mine_tokens(TEXTS, tokenizer, min_freq=2, max_tokens=2).tokens == ["在", "读"]
    assert mine_tokens(TEXTS, tokenizer, min_freq=1).after["num_unk"] == 0


def test_mine_words_with_a_dictionary_segmenter():
    tokenizer = tiny_tokenizer()
    segmenter = DictionarySegmenter(["读书", "北京", "大学", "上海"])
    assert segmenter("在北京读书读 the bank42!") == ["在", "北京", "读书", "读", " ", "the", " ", "bank42", "!"]
    report = mine_tokens(TEXTS, tokenizer, level="word", segmenter=segmenter, min_freq=2)
    # 在 (6x, [UNK]), 北京 (3x, 2 pieces), 读书 (2x, 2 [UNK]s); 读, 上海 and 大学 alone are seen once.
    assert report.tokens == ["在", "北京", "读书"]
    assert report.counts == {"在": 6, "北京": 3, "读书": 2}
    assert report.pieces["北京"] == ["北", "京"]
    assert report.before["num_words"] == report.after["num_words"] == 7 + 11 + 4 + 4
    assert report.before["num_pieces"] - report.after["num_pieces"] == 3 + 2
    assert report.after["num_unk"] < report.before["num_unk"]


def test_mine_words_with_jieba():
    pytest.importorskip("jieba")
    report = mine_tokens(["我在北京大学读书。"] * 2, tiny_tokenizer(), level="word", segmenter="jieba")
    assert "北京大学" in report.tokens and "读书" in report.tokens


def test_mine_english_words_split_into_pieces():
    tokenizer = tiny_tokenizer()  # knows "bank" and single letters: "banking" is bank ##i ##n ##g
    report = mine_tokens(["Banking banking in Paris", "banking rules"], tokenizer, level="word", min_freq=2)
    assert report.tokens == ["banking"]
    assert report.counts == {"banking": 3}


def test_bad_mining_arguments():
    with pytest.raises(ValueError, match="level"):
        mine_tokens(TEXTS, tiny_tokenizer(), level="sentence")
    with pytest.raises(ValueError, match="word list"):
        get_segmenter("/no/such/words.txt")


# ------------------------------------------------------------------------------------------------------- the tokenizer


@pytest.mark.parametrize("mode", ["append", "unused"])
def test_new_tokens_are_one_piece_in_context_and_after_save_load(mode, tmp_path):
    tokenizer = tokenizer_with_unused(8)
    tokens = ["在", "读", "北京", "读书", "banking", "covid-19"]
    expanded, planned, present, duplicates = expand_tokenizer(tokenizer, tokens, mode=mode)
    assert [p.token for p in planned] == tokens and not present and not duplicates
    assert {p.token: p.kind for p in planned} == {"在": "piece", "读": "piece", "北京": "added", "读书": "added",
                                                  "banking": "piece", "covid-19": "added"}
    ids = {p.token: p.id for p in planned}
    if mode == "append":
        assert list(ids.values()) == list(range(len(tokenizer), len(tokenizer) + 6))
        assert len(expanded) == len(tokenizer) + 6
    else:
        assert [p.replaced for p in planned] == [f"[unused{i}]" for i in range(6)]
        assert list(ids.values()) == [tokenizer.convert_tokens_to_ids(f"[unused{i}]") for i in range(6)]
        assert len(expanded) == len(tokenizer)
        assert "[unused0]" not in expanded.get_vocab() and "[unused6]" in expanded.get_vocab()
    text = "我在北京读书，Banking on COVID-19; precovid-19 bankings"
    expected = ["[UNK]", "在", "北京", "读书", "，", "banking", "on", "covid-19", ";",
                "p", "##r", "##e", "##c", "##o", "##v", "##i", "##d", "-", "1", "##9", "banking", "##s"]
    tokenizer.save_pretrained(tmp_path / "old")
    expanded.save_pretrained(tmp_path / "new")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "new")
    for tok in (expanded, reloaded):
        pieces = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
        assert pieces == expected
        for token, token_id in ids.items():
            assert tok(f"我{token}了", add_special_tokens=False)["input_ids"][1] == token_id
    # The original tokenizer is untouched.
    assert AutoTokenizer.from_pretrained(tmp_path / "old").get_vocab() == tokenizer.get_vocab()
    assert tokenizer.tokenize("在北京") == ["[UNK]", "北", "京"]


def test_bad_tokens_are_errors_naming_the_problem():
    tokenizer = tokenizer_with_unused(2)
    with pytest.raises(ValueError, match="empty"):
        expand_tokenizer(tokenizer, ["在", ""])
    with pytest.raises(ValueError, match="whitespace"):
        expand_tokenizer(tokenizer, ["new york"])
    with pytest.raises(ValueError, match="normalizer turns it into 'covid'"):
        expand_tokenizer(tokenizer, ["COVID"])  # uncased: COVID never survives lowercasing
    with pytest.raises(ValueError, match="continuation prefix"):
        expand_tokenizer(tokenizer, ["##ing"])
    with pytest.raises(TypeError, match="list of strings"):
        expand_tokenizer(tokenizer, "在读")
    with pytest.raises(ValueError, match=r"3 new tokens but only 2 \[unusedN\] slots"):
        expand_tokenizer(tokenizer, ["在", "读", "书"], mode="unused")
    with pytest.raises(ValueError, match=r"no \[unusedN\] tokens"):
        expand_tokenizer(tiny_tokenizer(), ["在"], mode="unused")
    with pytest.raises(ValueError, match="mode"):
        expand_tokenizer(tokenizer, ["在"], mode="replace")
    _, planned, present, duplicates = expand_tokenizer(tokenizer, ["在", "the", "在", "北", "读", "读"], mode="unused")
    assert [p.token for p in planned] == ["在", "读"]
    assert present == ["the", "北"] and duplicates == ["在", "读"]


# ----------------------------------------------------------------------------------------------- models and initialiser


# N(0, s) truncated at +-2 s has std s * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)) = s * 0.8796.
TRUNCATION_STD_FACTOR = math.sqrt(1 - 4 * (math.exp(-2) / math.sqrt(2 * math.pi)) / math.erf(2 / math.sqrt(2)))


def test_truncated_normal_rows_statistics_and_untouched_old_rows():
    tokenizer = tiny_tokenizer()
    tokens = [chr(0x4E00 + i) for i in range(3000) if chr(0x4E00 + i) not in tokenizer.get_vocab()][:2000]
    model = model_for(tokenizer)
    old = model.get_input_embeddings().weight.detach().clone()
    model, expanded, report = expand_vocabulary(model, tokenizer, tokens, mode="append", init="truncated_normal",
                                                seed=3)
    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape == (len(tokenizer) + 2000, 32) and model.config.vocab_size == len(expanded)
    assert torch.equal(weight[: len(tokenizer)], old)
    new = weight[len(tokenizer):]
    expected_std = 0.02 * TRUNCATION_STD_FACTOR
    assert new.abs().max() <= 0.04
    assert new.std().item() == pytest.approx(expected_std, rel=0.02)
    assert abs(new.mean().item()) < 3 * expected_std / math.sqrt(new.numel())
    again, _, _ = expand_vocabulary(model_for(tokenizer), tokenizer, tokens, mode="append", seed=3)
    assert torch.equal(again.get_input_embeddings().weight, weight)
    assert report.new_token_ids == list(range(len(tokenizer), len(tokenizer) + 2000))


def test_matched_std_follows_the_existing_rows(tiny_encoder_dir, tmp_path):
    tokenizer = tiny_tokenizer()
    tokens = [chr(0x4E00 + i) for i in range(3000) if chr(0x4E00 + i) not in tokenizer.get_vocab()][:2000]
    model = model_for(tokenizer)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(3.0)  # trained rows are larger than the 0.02 of a fresh model
    old_std = model.get_input_embeddings().weight.std().item()
    model, _, report = expand_vocabulary(model, tokenizer, tokens, mode="append", std=None, seed=3)
    new = model.get_input_embeddings().weight.detach()[len(tokenizer):]
    assert report.std == pytest.approx(old_std) and old_std > 0.05
    assert new.std().item() == pytest.approx(old_std * TRUNCATION_STD_FACTOR, rel=0.02)
    main(["expand", "--model", str(tiny_encoder_dir), "--token", "在", "--mode", "append", "--std", "matched",
          "--output_dir", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "vocab_expansion.json").read_text())
    encoder_std = AutoModel.from_pretrained(tiny_encoder_dir).get_input_embeddings().weight.std().item()
    assert saved["std"] == pytest.approx(encoder_std)


def test_piece_mean_rows_and_unknown_characters_keep_the_model_function():
    tokenizer = tiny_tokenizer()
    model = model_for(tokenizer, BertForMaskedLM)
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    old_weight = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.cls.predictions.bias.detach().clone()
    text = "朱元璋在上海读书"
    old_inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        old_logits = model(**old_inputs).logits
    model, expanded, report = expand_vocabulary(model, tokenizer, ["在", "读", "书", "北京", "banking"],
                                                mode="append", init="piece_mean")
    weight, bias = model.get_input_embeddings().weight.detach(), model.cls.predictions.bias.detach()
    unk, vocab = tokenizer.unk_token_id, tokenizer.get_vocab()
    for entry in report.added:
        pieces = [vocab[p] for p in entry["old_pieces"]]
        assert torch.allclose(weight[entry["id"]], old_weight[pieces].mean(0)), entry
        assert torch.allclose(bias[entry["id"]], old_bias[pieces].mean()), entry
    assert entry["old_pieces"] == ["bank", "##i", "##n", "##g"]
    assert report.unk_initialised == ["在", "读", "书"]
    assert torch.equal(weight[unk], old_weight[unk])
    # Characters that were [UNK] now have [UNK]'s row: the model computes exactly what it did before.
    new_inputs = expanded(text, return_tensors="pt")
    assert old_inputs["input_ids"][0, 4].item() == unk and new_inputs["input_ids"][0, 4].item() >= len(tokenizer)
    with torch.no_grad():
        new_logits = model(**new_inputs).logits
    assert torch.allclose(new_logits[..., : len(tokenizer)], old_logits, atol=1e-5)


@pytest.mark.parametrize("mode", ["append", "unused"])
def test_mean_resizing_gives_the_mean_row(mode):
    tokenizer = tokenizer_with_unused(4)
    model = model_for(tokenizer, BertForMaskedLM)
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    old_weight = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.cls.predictions.bias.detach().clone()
    model, _, report = expand_vocabulary(model, tokenizer, ["在", "读"], mode=mode, init="mean_resizing")
    ids = report.new_token_ids
    keep = [i for i in range(len(tokenizer)) if i not in ids]
    weight, bias = model.get_input_embeddings().weight.detach(), model.cls.predictions.bias.detach()
    for i in ids:
        assert torch.allclose(weight[i], old_weight[keep].mean(0), atol=1e-5)
        assert torch.allclose(bias[i], old_bias[keep].mean(), atol=1e-5)
    assert torch.equal(weight[keep], old_weight[keep])


def test_tied_decoder_and_bias_grow_with_the_embeddings():
    tokenizer = tiny_tokenizer()
    model = model_for(tokenizer, BertForMaskedLM)
    model, expanded, report = expand_vocabulary(model, tokenizer, ["在", "读书"], mode="append", seed=0)
    assert report.output_embeddings == "tied"
    assert model.cls.predictions.decoder.weight is model.get_input_embeddings().weight
    assert model.cls.predictions.bias.shape == (len(expanded),)
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    assert torch.equal(model.cls.predictions.bias[-2:], torch.zeros(2))
    logits = model(**expanded("在读书", return_tensors="pt")).logits
    assert logits.shape == (1, 4, len(expanded))


def test_masked_lm_from_an_encoder_checkpoint_gets_a_fresh_head_that_grows(tiny_encoder_dir, tmp_path):
    # The head is missing from an encoder-only checkpoint (MiniLM is one): it is created, tied, and grows.
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    model = BertForMaskedLM.from_pretrained(tiny_encoder_dir)
    encoder = BertModel.from_pretrained(tiny_encoder_dir).get_input_embeddings().weight
    model, expanded, report = expand_vocabulary(model, tokenizer, ["在"], mode="append", init="piece_mean")
    assert report.output_embeddings == "tied"
    assert torch.equal(model.get_input_embeddings().weight[: len(tokenizer)], encoder)
    assert model.get_output_embeddings().weight.shape[0] == model.cls.predictions.bias.shape[0] == len(expanded)
    model.save_pretrained(tmp_path)
    assert torch.equal(BertForMaskedLM.from_pretrained(tmp_path).cls.predictions.bias, model.cls.predictions.bias)


def test_untied_decoder_is_resized_and_initialised_on_its_own(tmp_path):
    tokenizer = tokenizer_with_unused(2)
    for mode in ("append", "unused"):
        model = model_for(tokenizer, BertForMaskedLM, tie_word_embeddings=False)
        decoder = model.get_output_embeddings().weight.detach().clone()
        assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
        model, expanded, report = expand_vocabulary(model, tokenizer, ["在", "读"], mode=mode, init="piece_mean")
        assert report.output_embeddings == "untied"
        out = model.get_output_embeddings().weight.detach()
        assert out.shape == (len(expanded), 32)
        unk = tokenizer.unk_token_id
        for i in report.new_token_ids:  # the decoder's own [UNK] row, not the input embedding's
            assert torch.equal(out[i], decoder[unk])
    model.save_pretrained(tmp_path)
    reloaded = BertForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(reloaded.get_output_embeddings().weight, model.get_output_embeddings().weight)


def test_the_crf_model_expands_saves_and_loads_without_the_package(tiny_encoder_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    model = BertCrfForTokenClassification.from_encoder(str(tiny_encoder_dir), ["O", "B-PER", "I-PER"]).eval()
    model, expanded, report = expand_vocabulary(model, tokenizer, ["在", "读", "北京"], mode="append",
                                                init="piece_mean")
    assert report.output_embeddings == "none"
    assert model.config.encoder.vocab_size == len(expanded) == model.encoder.config.vocab_size
    folder = tmp_path / "expanded"
    model.save_pretrained(folder)
    expanded.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["encoder"]["vocab_size"] == len(expanded)
    reloaded = load_model_for_expansion(str(folder))  # what `vocab expand` loads: the CRF model again
    assert type(reloaded) is BertCrfForTokenClassification
    for name, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name
    inputs = expanded("朱元璋在北京读书", return_tensors="pt")
    assert inputs["input_ids"].max().item() >= len(tokenizer)
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.save(logits, tmp_path / "logits.pt")
    script = without_package(f"""
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer
        path = {str(folder)!r}
        model = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        assert tokenizer.tokenize("朱元璋在北京读书") == ["朱", "元", "璋", "在", "北京", "读", "[UNK]"]
        with torch.no_grad():
            logits = model(**tokenizer("朱元璋在北京读书", return_tensors="pt")).logits
        # same weights (checked bit for bit above); one thread here may sum in another order than the parent
        torch.testing.assert_close(logits, torch.load({str(tmp_path / "logits.pt")!r}), rtol=1e-5, atol=1e-6)
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_bad_models_and_initialisers():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="do not belong together"):
        expand_vocabulary(BertModel(tiny_bert_config(vocab_size=50)), tokenizer, ["在"], mode="append")
    with pytest.raises(ValueError, match="init"):
        expand_vocabulary(model_for(tokenizer), tokenizer, ["在"], mode="append", init="zeros")
    model = model_for(tokenizer)
    rows = model.get_input_embeddings().weight.detach().clone()
    with pytest.raises(ValueError, match=r"no \[unusedN\]"):
        expand_vocabulary(model, tokenizer, ["在"], mode="unused")
    assert torch.equal(model.get_input_embeddings().weight, rows)  # nothing changed on error


def test_nothing_new_changes_nothing():
    tokenizer = tiny_tokenizer()
    model = model_for(tokenizer)
    rows = model.get_input_embeddings().weight.detach().clone()
    model, expanded, report = expand_vocabulary(model, tokenizer, ["北", "the", "北"], mode="append")
    assert report.added == [] and report.skipped_in_vocabulary == ["北", "the"] and report.skipped_duplicates == ["北"]
    assert len(expanded) == len(tokenizer) and torch.equal(model.get_input_embeddings().weight, rows)


def test_tokenization_stats_on_word_lists():
    stats = tokenization_stats(tiny_tokenizer(), [["朱", "在"], ["banking"]], is_split_into_words=True)
    assert stats == {"num_words": 3, "num_pieces": 6, "num_unk": 1, "unk_rate": 1 / 6, "pieces_per_word": 2.0}


# ------------------------------------------------------------------------------------------------------ command line


def test_command_line_mine_then_expand(tiny_encoder_dir, tmp_path, capsys):
    # `python -m hf_bert_tasks.vocab ...` calls main(sys.argv[1:]); called in-process here (a subprocess costs
    # seconds of imports).
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("news\t朱元璋在北京读书。\nnews\t在北京读书\n", encoding="utf-8")
    main(["mine", "--tokenizer", str(tiny_encoder_dir), "--files", str(corpus), "--column", "1",
          "--output", str(tmp_path / "tokens.txt"), "--report", str(tmp_path / "report.json")])
    assert "3 tokens" in capsys.readouterr().out
    assert (tmp_path / "tokens.txt").read_text(encoding="utf-8").split() == ["书", "在", "读"]  # ties: code point
    assert json.loads((tmp_path / "report.json").read_text())["after"]["num_unk"] == 0
    main(["expand", "--model", str(tiny_encoder_dir), "--tokens", str(tmp_path / "tokens.txt"), "--token", "北京",
          "--mode", "append", "--init", "piece_mean", "--output_dir", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "vocab_expansion.json").read_text())
    assert [a["token"] for a in report["added"]] == ["书", "在", "读", "北京"]
    model = AutoModel.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == report["tokenizer_size_after"]
    assert tokenizer.tokenize("在北京读书") == ["在", "北京", "读", "书"]
    with pytest.raises(SystemExit):
        main(["expand", "--model", str(tiny_encoder_dir), "--output_dir", str(tmp_path / "none")])
    assert "needs --tokens" in capsys.readouterr().err


def test_mine_help_shows_defaults_and_where_columns_count_from(capsys):
    with pytest.raises(SystemExit):
        main(["mine", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "counting from 0" in text
    for default in ("(default: 2)", "(default: char)", "(default: lines)"):
        assert default in text, default


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("format, name, expected", [
    ("ner", "conll_docstart_before.conll", "Maria Lindqvist visited Oslo ."),
    ("conll", "conll_docstart_before.conll", "Maria Lindqvist visited Oslo ."),
    ("ner", "char_bio.txt", None),  # characters: joined with nothing
    ("char", "char_bio.txt", None),
    ("cluener", "cluener.json", None),
    ("ner_jsonl", "tokens.jsonl", "Anna Keller visited Porto"),
    ("classification", "classify_cnews.txt", None),
    ("text_label", "classify_titles.txt", None),
    ("tsv", "classify_sst2.tsv", None),
    ("squad", "qa_squad_v1.json", None),
])
def test_read_texts_reads_what_the_task_readers_read(format, name, expected):
    from hf_bert_tasks.classification.data import read_classification_file
    from hf_bert_tasks.ner.data import load_ner_dataset
    from hf_bert_tasks.qa.data import read_squad_json
    from hf_bert_tasks.vocab import read_texts

    path = FIXTURES / name
    texts = read_texts([path], format=format)
    if format in ("ner", "conll", "char", "cluener", "ner_jsonl"):
        sentences = load_ner_dataset(test_file=path)["test"]["tokens"]
        glue = " " if expected else ""
        assert texts == [glue.join(tokens) for tokens in sentences]
        if expected:
            assert texts[0] == expected
        if format == "cluener":  # CLUENER's tokens are its text's characters: the original texts come back
            import json

            assert texts == [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    elif format == "squad":
        rows = read_squad_json(path)
        assert texts == list(dict.fromkeys(rows["context"])) + list(rows["question"])
    else:
        reader_format = {"classification": "auto"}.get(format, format)
        assert texts == list(read_classification_file(path, require_labels=False, format=reader_format)["text"])
    assert texts and all(isinstance(t, str) and t.strip() for t in texts)


def test_mine_reads_an_ner_file_directly(tiny_encoder_dir, tmp_path, capsys):
    # A character-per-line NER file needs no conversion to sentences first.
    train = tmp_path / "train.txt"
    train.write_text("".join(f"{c}\tO\n" for c in "书在读") + "\n" + "".join(f"{c}\tO\n" for c in "书读") + "\n",
                     encoding="utf-8")
    main(["mine", "--tokenizer", str(tiny_encoder_dir), "--files", str(train), "--format", "char",
          "--output", str(tmp_path / "tokens.txt")])
    assert (tmp_path / "tokens.txt").read_text(encoding="utf-8").split() == ["书", "读"]  # "在" is seen once
    with pytest.raises(SystemExit):
        main(["mine", "--tokenizer", str(tiny_encoder_dir), "--files", str(train), "--format", "char", "--column", "0",
              "--output", str(tmp_path / "tokens.txt")])
    assert "--column is for --format lines" in capsys.readouterr().err


def test_text_lines_keep_a_line_separator_inside_and_errors_name_the_line(tmp_path):
    from hf_bert_tasks.files import DataFileError
    from hf_bert_tasks.vocab import read_texts

    path = tmp_path / "lines.txt"
    path.write_text("news\tone\u2028two\nbad line\nnews\tthree\n", encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        read_texts([path], column=1)
    assert str(info.value).startswith(f"{path}:2: no tab-separated column 1 (columns count from 0")
    path.write_text("news\tone\u2028two\nnews\tthree\n", encoding="utf-8")
    assert read_texts([path], column=1) == ["one\u2028two", "three"]


# ------------------------------------------------------------------------------------------------------------- MiniLM


@pytest.mark.slow
def test_minilm_unused_slots_take_chinese_characters(tmp_path):
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = (ROOT / "hf_bert_tasks" / "sample_data" / "zh_train.txt").read_text(encoding="utf-8")
    sentences = ["".join(line.split("\t")[0] for line in block.split("\n") if line)
                 for block in text.split("\n\n") if block.strip()]
    report = mine_tokens(sentences, tokenizer, min_freq=1)
    assert report.before["unk_rate"] > 0.1 and report.after["num_unk"] == 0
    model = BertModel.from_pretrained(path)
    old = model.get_input_embeddings().weight.detach().clone()
    model, expanded, expansion = expand_vocabulary(model, tokenizer, report.tokens[:994], mode="unused", seed=0)
    assert len(expanded) == len(tokenizer) == model.get_input_embeddings().weight.shape[0] == 30522
    changed = (model.get_input_embeddings().weight != old).any(1).nonzero().flatten().tolist()
    assert changed == sorted(expansion.new_token_ids)
    model.save_pretrained(tmp_path)
    expanded.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenization_stats(reloaded, sentences)["num_unk"] == 0
