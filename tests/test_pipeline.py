"""The custom pipeline shipped with every CRF model (hf_bert_tasks/modeling/pipeline_bert_crf.py): transformers'
`pipeline(..., trust_remote_code=True)` builds it from the saved folder, without this package, and it gives
`NerPredictor`'s entities (the CRF's Viterbi path, never the argmax), for text of any length."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from conftest import PYTHON, ROOT, WORDS, shared_data_path, tiny_bert_config, tiny_tokenizer, without_package
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.ner.predictor import NerPredictor
from hf_bert_tasks.modeling.tagging import split_words, tags_to_spans

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
LONG_TEXT = " ".join(WORDS[i * 7 % len(WORDS)] for i in range(400)) + " 明朝建立于1368年，开国皇帝是朱元璋。"


def make_model(seed: int = 0, **config_kwargs) -> BertCrfForTokenClassification:
    torch.manual_seed(seed)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(LABELS)),
                           label2id={label: i for i, label in enumerate(LABELS)},
                           **{"max_seq_length": 16, "stride": 4, **config_kwargs})
    model = BertCrfForTokenClassification(config).eval()
    with torch.no_grad():  # a random model that still finds plenty of entities
        model.classifier.weight.mul_(20)
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0, 0.5, 1.0, 0.5]))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("crf-model")
    model = make_model()
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path, model


def spans(entities, type_key="type"):
    return [(e[type_key], e["start"], e["end"]) for e in entities]


def test_save_pretrained_ships_the_pipeline(saved):
    path, _ = saved
    config = json.loads((path / "config.json").read_text())
    assert config["custom_pipelines"]["token-classification"]["impl"] == \
        "pipeline_bert_crf.BertCrfTokenClassificationPipeline"
    for name in ("pipeline_bert_crf.py", "tagging.py", "windows.py", "texts.py", "crf.py", "schemes.py",
                 "modeling_bert_crf.py"):
        assert (path / name).is_file(), name
    # The shipped files import nothing of hf_bert_tasks (relative imports of siblings only).
    for name in ("pipeline_bert_crf.py", "tagging.py", "windows.py", "texts.py"):
        assert "hf_bert_tasks" not in "".join(
            line for line in (path / name).read_text().splitlines() if line.lstrip().startswith(("from", "import")))


def test_pipeline_without_the_package_gives_the_predictors_entities(saved, tmp_path):
    """In a process where `import hf_bert_tasks` fails: both ways of asking transformers for the pipeline build
    ours; long text is windowed, not truncated; batch_size/device work; the entities are NerPredictor's."""
    path, model = saved
    texts = ["john visited paris with mary smith .", "", LONG_TEXT, "朱元璋 in berlin"]
    script = without_package(f"""
        import json, sys
        from transformers import pipeline
        path, texts = {str(path)!r}, {texts!r}
        ner = pipeline("token-classification", model=path, trust_remote_code=True, aggregation_strategy="simple",
                       device="cpu")
        assert type(ner).__module__.startswith("transformers_modules"), type(ner).__module__
        untasked = pipeline(model=path, trust_remote_code=True, device=-1)
        assert type(untasked).__name__ == "BertCrfTokenClassificationPipeline", type(untasked)
        out = {{
            "one_by_one": [ner(text) for text in texts],
            "batched": ner(texts, batch_size=3),
            "words": untasked(texts[2]),
        }}
        try:
            ner(5)
        except TypeError as error:
            out["error"] = str(error)
        json.dump(out, open("out.json", "w"))
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    expected = NerPredictor(model, tiny_tokenizer(), batch_size=4)(texts)
    assert len(split_words(LONG_TEXT)) > 16 * 10  # many windows of 16 tokens
    assert len(expected[2]) > 20 and expected[1] == []
    for got in (out["one_by_one"], out["batched"]):
        assert [spans(r, "entity_group") for r in got] == [spans(r) for r in expected]
        assert [e["word"] for r in got for e in r] == [e["text"] for r in expected for e in r]
        assert [e["score"] for r in got for e in r] == pytest.approx([e["score"] for r in expected for e in r],
                                                                      abs=1e-5)
    # Without aggregation: one dict per word, whose tags read as the same entities.
    words = split_words(LONG_TEXT)
    tags = ["O"] * len(words)
    for e in out["words"]:
        assert set(e) == {"entity", "score", "index", "word", "start", "end"}
        assert (e["word"], e["start"], e["end"]) == words[e["index"]]
        tags[e["index"]] = e["entity"]
    assert [(s.type, words[s.start][1], words[s.end - 1][2]) for s in tags_to_spans(tags, "BIO")] == \
        spans(expected[2])
    assert out["error"] == "text must be a str, got int"


def test_a_config_without_custom_pipelines_still_gets_the_crf_pipeline(saved, tmp_path):
    """A folder whose config.json predates `custom_pipelines`: the config adds the entry when it loads, before
    pipeline() chooses its class, so it never silently builds transformers' argmax pipeline over word pieces; where
    the pipeline's file is missing too, pipeline() fails naming it."""
    path, _ = saved
    old = tmp_path / "old"
    shutil.copytree(path, old)
    config = json.loads((old / "config.json").read_text())
    del config["custom_pipelines"]
    (old / "config.json").write_text(json.dumps(config))
    script = without_package(f"""
        from transformers import pipeline
        for ner in (pipeline("token-classification", model={str(old)!r}, trust_remote_code=True),
                    pipeline(model={str(old)!r}, trust_remote_code=True)):
            assert type(ner).__name__ == "BertCrfTokenClassificationPipeline", type(ner)
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    (old / "pipeline_bert_crf.py").unlink()
    with pytest.raises(OSError, match="pipeline_bert_crf.py"):
        pipeline("token-classification", model=str(old), trust_remote_code=True)


def test_a_crf_that_forbids_entities_gives_none_although_the_argmax_has_some(tmp_path):
    """If the pipeline fell back to the argmax of the emissions (transformers' own pipeline), it would find entities
    here: every emission prefers B-PER. The CRF's transitions make any path through an entity tag cost 1e4."""
    model = make_model()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 8.0, 0.0]))
        model.crf.start_transitions[1:] = -1e4
        model.crf.transitions[:, 1:] = -1e4
    model.save_pretrained(tmp_path)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    text = "john visited paris with mary smith in berlin"
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits
    assert (logits.argmax(-1)[0, 1:-1] == 3).all()  # the argmax: an entity on every word
    for strategy in ("none", "simple"):
        ner = pipeline("token-classification", model=str(tmp_path), trust_remote_code=True,
                       aggregation_strategy=strategy)
        assert type(ner).__name__ == "BertCrfTokenClassificationPipeline"
        assert ner(text) == []
        assert ner(LONG_TEXT) == []


def test_a_bfloat16_model_runs_the_pipeline(saved):
    """`dtype=torch.bfloat16` loads the encoder in bf16 and keeps the CRF's parameters float32 (issue 26)."""
    path, _ = saved
    ner = pipeline("token-classification", model=str(path), trust_remote_code=True, dtype=torch.bfloat16,
                   aggregation_strategy="simple")
    assert ner.model.encoder.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert ner.model.crf.transitions.dtype == torch.float32
    entities = ner("john visited paris with mary smith and the president of france in berlin .")
    assert entities and all(0.0 < e["score"] <= 1.0 for e in entities)


@pytest.fixture(scope="module")
def ner(saved):
    path, _ = saved
    return pipeline("token-classification", model=str(path), trust_remote_code=True, aggregation_strategy="simple")


def test_aggregation_strategies(ner):
    text = "john visited paris with mary smith and the president of france in berlin ."
    simple = ner(text)
    assert simple and all(set(e) == {"entity_group", "score", "word", "start", "end"} for e in simple)
    # A CRF tags words: first/average/max have no sub-word conflict to settle and give the same entities.
    for strategy in ("first", "average", "max", "SIMPLE"):
        assert ner(text, aggregation_strategy=strategy) == simple
    types = {e["entity_group"] for e in simple}
    kept = ner(text, ignore_labels=["O", "PER"])
    assert kept == [e for e in simple if e["entity_group"] != "PER"] and "PER" in types
    per_word = ner(text, aggregation_strategy="none")
    assert {e["start"] for e in per_word} >= {e["start"] for e in simple}
    assert all(e["entity"] != "O" for e in per_word)
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        ner(text, aggregation_strategy="longest")


def test_pre_split_words(ner, saved):
    words = ["john", "visited", "paris", "with", "mary", "smith"]
    got = ner(words, is_split_into_words=True)
    text = " ".join(words)
    assert spans(got, "entity_group") == spans(ner(text), "entity_group")
    assert ner([words, words[:2]], is_split_into_words=True) == [got, ner(words[:2], is_split_into_words=True)]


def test_bad_input(ner):
    assert ner("") == [] and ner(" \n\t") == [] and ner([]) == []
    assert ner(["", "paris"])[0] == []
    for bad, message in ((5, "got int"), (None, "got NoneType"), (b"john", "got bytes"), (["fine", 3], "text 1 must be a str, got int")):
        with pytest.raises(TypeError, match=message):
            ner(bad)


def test_long_text_is_windowed_the_same_at_every_batch_size(ner):
    one = ner(LONG_TEXT, batch_size=1)
    assert len(one) > 20 and one[-1]["end"] > len(LONG_TEXT) - 25  # the end of the text is tagged too
    assert spans(ner(LONG_TEXT, batch_size=7), "entity_group") == spans(one, "entity_group")


def test_a_long_texts_windows_are_streamed_not_all_held(ner, monkeypatch):
    """The first window leaves preprocess before the text's later windows are tokenized, and entities are those of
    the whole text; memory follows the block of windows in flight, not the text (benchmarks/pipeline_memory.py)."""
    monkeypatch.setattr(sys.modules[type(ner).__module__], "SORT_BLOCK", 8)  # the copy in the model's folder
    text = " ".join([LONG_TEXT] * 4)
    expected = ner(text, aggregation_strategy="simple")
    windows = ner.preprocess(text)
    first = next(windows)
    item = first["item"]
    assert len(item.word_ids) == 8  # one block tokenized so far
    rest = list(windows)
    assert len(item.word_ids) == len(rest) + 1 > 100 and rest[-1]["is_last"]
    assert spans(ner(text, aggregation_strategy="simple"), "entity_group") == spans(expected, "entity_group")


# -- real data: the pipeline without the package against NerPredictor ------------------------------------------------

REMOTE_PIPELINE = without_package("""
import json, sys
from transformers import pipeline
folder, texts_file, out_file = sys.argv[1:]
texts = json.load(open(texts_file, encoding="utf-8"))
ner = pipeline("token-classification", model=folder, trust_remote_code=True, aggregation_strategy="simple",
               device="cpu")
assert type(ner).__module__.startswith("transformers_modules"), type(ner).__module__
results = ner(texts, batch_size=32)
json.dump([[(e["entity_group"], e["start"], e["end"]) for e in r] for r in results], open(out_file, "w"))
""")


def trained_model(env_name: str, default: str):
    """A model trained by recipes/ner.py (see benchmarks/README.md, 'The pipeline'), or skip."""
    path = Path(os.environ.get(env_name, ROOT / "runs" / default))
    if not (path / "config.json").is_file():
        pytest.skip(f"no model at {path}: train one as benchmarks/README.md ('The pipeline') says, or set {env_name}")
    return path


def compare_on_real_text(model_dir, texts, tmp_path):
    """Entities (type, start, end) of every text: the pipeline built by transformers from a freshly saved folder in a
    process without hf_bert_tasks, and NerPredictor here."""
    from transformers import AutoTokenizer

    predictor = NerPredictor.from_pretrained(str(model_dir))
    folder = tmp_path / "model"  # saved with the current code, so it ships the current pipeline
    predictor.model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)
    (tmp_path / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([PYTHON, "-c", REMOTE_PIPELINE, str(folder), str(tmp_path / "texts.json"),
                             str(tmp_path / "out.json")], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"}, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = [[tuple(e) for e in r] for r in json.loads((tmp_path / "out.json").read_text())]
    expected = [spans(r) for r in predictor(texts)]
    differing = [i for i, (a, b) in enumerate(zip(remote, expected)) if a != b]
    assert len(remote) == len(texts) and differing == [], [(texts[i], remote[i], expected[i]) for i in differing[:3]]
    return sum(map(len, expected))


@pytest.mark.slow
@pytest.mark.data
def test_pipeline_equals_the_predictor_on_the_conll_dev_set(tmp_path):
    from hf_bert_tasks.ner.data import read_conll

    dev = read_conll(shared_data_path("conll2003", "eng.testa"))
    texts = [" ".join(tokens) for tokens in dev["tokens"]]
    assert len(texts) == 3250
    model_dir = trained_model("HF_BERT_TASKS_CONLL_MODEL", "conll_minilm_crf")
    assert compare_on_real_text(model_dir, texts, tmp_path) > 3000


@pytest.mark.slow
@pytest.mark.data
def test_pipeline_equals_the_predictor_on_the_msra_test_set(tmp_path):
    from hf_bert_tasks.ner.data import read_char_bio

    test = read_char_bio(shared_data_path("msra_ner", "msra_test_bio"))
    texts = ["".join(chars) for chars in test["tokens"]]
    assert len(texts) > 3000 and max(map(len, texts)) > 128  # sentences longer than one window
    model_dir = trained_model("HF_BERT_TASKS_MSRA_MODEL", "msra_minilm_crf")
    assert compare_on_real_text(model_dir, texts, tmp_path) > 300  # 428 with the small model of benchmarks/README.md


def test_the_tokenizer_of_a_saved_folder_loads_without_custom_code(saved, tmp_path):
    """Issue 29 case 21: transformers 5 reads config.json through AutoConfig before any tokenizer file, and asks on a
    terminal about the model's custom code unless told; what a saved folder can do is load with either answer given,
    never asking, and give the same tokens (stdin closed: a prompt would fail the run instead of waiting)."""
    path, _ = saved
    script = without_package(f"""
        from transformers import AutoTokenizer
        text = "john visited paris with mary smith ."
        plain = AutoTokenizer.from_pretrained({str(path)!r}, trust_remote_code=False)
        trusted = AutoTokenizer.from_pretrained({str(path)!r}, trust_remote_code=True)
        assert type(plain).__module__.startswith("transformers.models"), type(plain).__module__
        assert plain(text)["input_ids"] == trusted(text)["input_ids"]
    """)
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, timeout=120,
                            env={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
                                 "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
