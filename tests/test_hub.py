"""Publishing to the Hub (hf_bert_tasks.hub) against the loopback Hub server (tests/hub_server.py), with the real
huggingface_hub client and, for loading, transformers in fresh subprocesses where hf_bert_tasks cannot be imported.

In this process huggingface_hub has read HF_ENDPOINT/HF_HUB_OFFLINE at import (conftest sets offline mode), so the
`hub` fixture points its module constants at the server for the duration of a test; subprocesses get the
environment variables instead (HF_ENDPOINT, HF_HUB_DISABLE_XET, HF_HUB_DISABLE_TELEMETRY, an empty HF_HOME).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, SpaceCard, constants, hf_hub_download, metadata_load, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer, without_package
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.hub import endpoint_files, push_model, push_space, render_model_card, space_package_modules
from hub_server import HubServer, git_blob_sha1
from tiny_models import save_classifier, save_qa_model

TOKEN = "hf_loopback_alice"
LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
SENTENCES = [["john", "smith", "visited", "paris", "with", "the", "ibm", "team"],
             ["mary", "met", "anna", "in", "tokyo"]]
RESULTS_A = {"epoch": 3.0, "eval_loss": 1.25, "eval_precision": 0.8125, "eval_recall": 0.7903, "eval_f1": 0.8012,
             "eval_accuracy": 0.95, "eval_PER_f1": 0.9, "eval_LOC_f1": 0.75, "eval_ORG_f1": 0.6667,
             "test_precision": 0.7714, "test_recall": 0.75, "test_f1": 0.7606, "test_PER_f1": 0.85,
             "test_LOC_f1": 0.7, "test_ORG_f1": 0.625, "train_loss": 2.5}
RESULTS_B = {**RESULTS_A, "eval_f1": 0.8421, "test_f1": 0.7999, "eval_PER_f1": 0.95}
TRAINING = {"learning_rate": 5e-05, "crf_learning_rate": 0.001, "num_train_epochs": 3, "seed": 42}
PUSHED = {".gitattributes", "README.md", "config.json", "model.safetensors", "configuration_bert_crf.py",
          "modeling_bert_crf.py", "crf.py", "schemes.py", "encoders.py", "pipeline_bert_crf.py", "tagging.py",
          "windows.py", "texts.py", "tokenizer.json", "tokenizer_config.json", "all_results.json",
          "handler.py", "qa_spans.py", "threads.py",
          "requirements.txt"}  # the Inference Endpoints files, added by the push


def save_recipe_output(path: Path, seed: int, results: dict) -> BertCrfForTokenClassification:
    """A folder like the recipe's --output_dir: model, tokenizer, scores, and training leftovers never to be pushed."""
    torch.manual_seed(seed)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(LABELS)),
                           label2id={label: i for i, label in enumerate(LABELS)})
    model = BertCrfForTokenClassification(config).eval()
    with torch.no_grad():
        model.crf.transitions.normal_(0, 1)  # a CRF that matters for decoding
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    (path / "all_results.json").write_text(json.dumps(results))
    torch.save({"learning_rate": 5e-5}, path / "training_args.bin")
    (path / "trainer_state.json").write_text("{}")
    (path / "test_predictions.txt").write_text("john\tB-PER\n")
    (path / "checkpoint-10").mkdir()
    shutil.copy(path / "model.safetensors", path / "checkpoint-10" / "model.safetensors")
    torch.save({}, path / "checkpoint-10" / "optimizer.pt")
    (path / "runs").mkdir()
    (path / "runs" / "events.out.tfevents.1").write_bytes(b"\0")
    return model


def local_outputs(model, tokenizer=None):
    tokenizer = tokenizer or tiny_tokenizer()
    inputs = tokenizer(SENTENCES, is_split_into_words=True, return_tensors="pt", padding=True)
    tag_mask = torch.zeros_like(inputs["input_ids"], dtype=torch.bool)
    for row in range(len(SENTENCES)):
        word_ids = inputs.word_ids(row)
        for i, w in enumerate(word_ids):
            tag_mask[row, i] = w is not None and (i == 0 or word_ids[i - 1] != w)
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    return inputs, tag_mask, logits, model.decode(logits, tag_mask)


def hub_env(hub: HubServer, home: Path) -> dict:
    """Environment of a fresh process that talks to the loopback Hub with an empty cache."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_ENDPOINT": hub.url, "HF_HOME": str(home),
            "HF_MODULES_CACHE": str(home / "modules"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def start_hub(root: Path) -> HubServer:
    return HubServer(root, tokens={TOKEN: "alice", "hf_loopback_bob": "bob"}, orgs={"alice": ["acme"]}).start()


def point_client_at(hub: HubServer, monkeypatch) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub.store.root / "client-cache"))  # never the user's cache
    # no token from the environment or a login file: every test says which token it uses
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hub.store.root / "no-login" / "token"))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = start_hub(tmp_path / "hub")
    point_client_at(server, monkeypatch)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """Model A pushed, an unrelated file added on the Hub, then model B (new weights, scores, no eval file) pushed."""
    tmp = tmp_path_factory.mktemp("pushed")
    server = start_hub(tmp / "hub")
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_client_at(server, monkeypatch)
        model_a = save_recipe_output(tmp / "a", seed=0, results=RESULTS_A)
        (tmp / "a" / "eval_results.json").write_text(json.dumps({"eval_f1": RESULTS_A["eval_f1"]}))
        sha_a = push_model(tmp / "a", "alice/tiny-ner", token=TOKEN, datasets="conll2003", language="en",
                           base_model="bert-base-cased", training_args=TRAINING)
        HfApi(token=TOKEN).upload_file(path_or_fileobj=b"kept", path_in_repo="notes/extra.txt",
                                       repo_id="alice/tiny-ner")
        model_b = save_recipe_output(tmp / "b", seed=1, results=RESULTS_B)
        sha_b = push_model(tmp / "b", "alice/tiny-ner", token=TOKEN, datasets="conll2003", language="en",
                           base_model="bert-base-cased", training_args=TRAINING)
        yield {"hub": server, "tmp": tmp, "a": (tmp / "a", model_a, sha_a), "b": (tmp / "b", model_b, sha_b),
               "monkeypatch": monkeypatch}
    server.stop()


# --- pushing a model --------------------------------------------------------------------------------------------------
def test_push_sends_the_model_and_nothing_of_the_training_run(pushed):
    api = HfApi(token=TOKEN)
    folder_a, _, sha_a = pushed["a"]
    folder_b, _, sha_b = pushed["b"]
    assert re.fullmatch(r"[0-9a-f]{40}", sha_a) and sha_a != sha_b
    assert set(api.list_repo_files("alice/tiny-ner", revision=sha_a)) == PUSHED | {"eval_results.json"}
    # B's folder has no eval_results.json: the stale copy is deleted; the file added on the Hub by hand stays.
    assert set(api.list_repo_files("alice/tiny-ner")) == PUSHED | {"notes/extra.txt"}
    info = api.model_info("alice/tiny-ner")
    assert info.sha == sha_b and info.private is False
    commits = api.list_repo_commits("alice/tiny-ner")
    assert [c.commit_id for c in commits][0] == sha_b and sha_a in [c.commit_id for c in commits]
    assert len(commits) == 4  # initial commit, A, the extra file, B
    assert commits[0].title == "Upload NER model (validation F1 0.8421)"
    assert pushed["hub"].unhandled == []


def test_snapshot_into_an_empty_cache_is_byte_identical(pushed, tmp_path):
    folder_a, _, sha_a = pushed["a"]
    cache = tmp_path / "cache"
    path = Path(snapshot_download("alice/tiny-ner", revision=sha_a, cache_dir=cache, endpoint=pushed["hub"].url))
    assert path.name == sha_a
    added = endpoint_files()  # what the push adds to a folder saved without the recipes
    for name in PUSHED - {".gitattributes", "README.md"}:
        expected = (folder_a / name).read_bytes() if (folder_a / name).exists() else added[name].encode()
        assert (path / name).read_bytes() == expected, name
    assert not (path / "training_args.bin").exists() and not (path / "checkpoint-10").exists()


LOAD_SCRIPT = without_package("""
import contextlib, io, json, sys
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

args = json.loads(sys.argv[1])
inputs = torch.load(args["inputs"])
outputs = {}
for name, revision in args["revisions"].items():
    model = AutoModelForTokenClassification.from_pretrained(args["repo"], revision=revision,
                                                            trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    tokenizer = AutoTokenizer.from_pretrained(args["repo"], revision=revision, trust_remote_code=True)
    ids = tokenizer(args["sentences"], is_split_into_words=True, return_tensors="pt", padding=True)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    outputs[name] = {"logits": logits, "tags": model.decode(logits, inputs["tag_mask"]), "input_ids": ids}
snippet_output = io.StringIO()
with contextlib.redirect_stdout(snippet_output):
    exec(args["snippet"], {})
outputs["snippet"] = snippet_output.getvalue()
torch.save(outputs, args["out"])
""")


def usage_snippet(card_text: str) -> str:
    """The transformers-only usage block of the card (the one that does not need hf_bert_tasks)."""
    blocks = re.findall(r"```python\n(.*?)```", card_text, flags=re.S)
    return next(b for b in blocks if "AutoModelForTokenClassification" in b)


def test_each_revision_loads_through_the_hub_without_the_package(pushed, tmp_path):
    """Fresh process, empty cache, hf_bert_tasks unimportable: both pushed commits and main load and give exactly the
    logits and CRF tags of the models that were pushed; the card's usage snippet runs there too."""
    folder_a, model_a, sha_a = pushed["a"]
    folder_b, model_b, sha_b = pushed["b"]
    inputs, tag_mask, logits_a, tags_a = local_outputs(model_a)
    _, _, logits_b, tags_b = local_outputs(model_b)
    torch.save({"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "tag_mask": tag_mask},
               tmp_path / "inputs.pt")
    card = hf_hub_download("alice/tiny-ner", "README.md", cache_dir=tmp_path / "card", endpoint=pushed["hub"].url)
    snippet = usage_snippet(Path(card).read_text(encoding="utf-8"))
    args = {"repo": "alice/tiny-ner", "revisions": {"a": sha_a, "b": sha_b, "main": "main"}, "snippet": snippet,
            "inputs": str(tmp_path / "inputs.pt"), "out": str(tmp_path / "out.pt"), "sentences": SENTENCES}
    result = subprocess.run([PYTHON, "-c", LOAD_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                            cwd=tmp_path, env=hub_env(pushed["hub"], tmp_path / "home"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    assert torch.equal(remote["a"]["logits"], logits_a) and torch.equal(remote["a"]["tags"], tags_a)
    assert torch.equal(remote["b"]["logits"], logits_b) and torch.equal(remote["b"]["tags"], tags_b)
    assert torch.equal(remote["main"]["logits"], logits_b)
    assert not torch.equal(logits_a, logits_b)
    assert torch.equal(remote["a"]["input_ids"], inputs["input_ids"])
    # The snippet gives the same word tags remotely as here, from the local folder.
    local_snippet = io_of(snippet.replace('"alice/tiny-ner"', repr(str(folder_b))))
    assert remote["snippet"] == local_snippet
    assert re.fullmatch(r"\[\('Angela', '[A-Z-]+'\).*\]\n", remote["snippet"], flags=re.S)
    assert pushed["hub"].unhandled == []  # transformers asked nothing the server does not know


def io_of(code: str) -> str:
    import contextlib
    import io

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(code, {})
    return output.getvalue()


def test_model_card_metadata_scores_and_usage(pushed, tmp_path):
    url = pushed["hub"].url
    path = hf_hub_download("alice/tiny-ner", "README.md", cache_dir=tmp_path, endpoint=url)
    metadata = metadata_load(path)
    card = ModelCard.load("alice/tiny-ner")  # the way a user reads it, through the Hub
    assert card.data.to_dict() == ModelCard(Path(path).read_text(encoding="utf-8")).data.to_dict()
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "token-classification"
    assert {"custom_code", "ner", "bert-crf"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["conll2003"] and metadata["language"] == ["en"]
    assert metadata["license"] == "apache-2.0" and metadata["base_model"] == "bert-base-cased"
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "tiny-ner"
    reported = {(r.dataset_split, r.metric_type): r.metric_value for r in results}
    expected = {(split, metric): RESULTS_B[f"{prefix}_{metric}"] for prefix, split in (("eval", "validation"),
                ("test", "test")) for metric in ("precision", "recall", "f1")}
    assert reported == expected
    assert all(r.task_type == "token-classification" and r.dataset_type == "conll2003" for r in results)
    text = card.text
    assert 'AutoModelForTokenClassification.from_pretrained("alice/tiny-ner", trust_remote_code=True)' in text
    assert 'NerPredictor.from_pretrained("alice/tiny-ner")' in text
    # Usage: the CRF's pipeline first, then NerPredictor; and what the hosted widget does with custom code.
    pipeline_call = 'pipeline("token-classification", model="alice/tiny-ner", trust_remote_code=True'
    assert text.index(pipeline_call) < text.index("NerPredictor.from_pretrained")
    assert "does not run code stored in a model repository" in text
    assert ", ".join(f"`{label}`" for label in LABELS) in text
    assert "| PER | 0.9500 | 0.8500 |" in text and "| validation | 0.8125 | 0.7903 | 0.8421 |" in text
    assert "| crf_learning_rate | 0.001 |" in text and "## Limitations" in text
    # The first push's card (kept in history) has the first scores.
    old = metadata_load(hf_hub_download("alice/tiny-ner", "README.md", revision=pushed["a"][2], cache_dir=tmp_path,
                                        endpoint=url))
    assert {r.metric_value for r in model_index_to_eval_results(old["model-index"])[1]} >= {0.8012, 0.7606}


def test_card_without_scores_has_no_model_index(tmp_path):
    save_recipe_output(tmp_path / "m", seed=0, results={})
    text = render_model_card(tmp_path / "m", {}, repo_id="alice/m")
    card = ModelCard(text)
    assert "model-index" not in card.data.to_dict() and "No evaluation results" in card.text
    with pytest.raises(ValueError, match="local path"):
        render_model_card(tmp_path / "m", {}, base_model=str(tmp_path / "m"))


def test_card_of_a_softmax_model_and_a_broken_template(tmp_path):
    from transformers import BertForTokenClassification

    config = tiny_bert_config(id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    BertForTokenClassification(config).save_pretrained(tmp_path / "softmax")
    card = ModelCard(render_model_card(tmp_path / "softmax", RESULTS_A, repo_id="alice/softmax-ner"))
    assert "custom_code" not in card.data.tags and "bert-crf" not in card.data.tags
    assert "argmax" in card.text and "model.decode" not in card.text
    # A template that loses the metadata block fails the read-back check instead of producing a bare card.
    template = tmp_path / "broken.md"
    template.write_text("# {{ model_name }}\n")
    with pytest.raises(ValueError, match="reads back"):
        render_model_card(tmp_path / "softmax", RESULTS_A, repo_id="alice/softmax-ner", template=template)


def test_card_of_a_sentence_pair_classifier_carries_glue_scores(tmp_path):
    """Two classes: the model-index carries accuracy, the F1 of the positive class (label id 1, named in the card),
    macro F1 and Matthews correlation for each split; a multi-class card has no positive-class F1."""
    from transformers import BertForSequenceClassification

    labels = ["not_equivalent", "equivalent"]
    config = tiny_bert_config(num_labels=2, id2label=dict(enumerate(labels)),
                              label2id={label: i for i, label in enumerate(labels)})
    BertForSequenceClassification(config).save_pretrained(tmp_path / "mrpc")
    results = {f"{prefix}_{metric}": value for prefix, offset in (("eval", 0.0), ("test", -0.02))
               for metric, value in (("accuracy", 0.789 + offset), ("f1", 0.851 + offset),
                                     ("macro_f1", 0.741 + offset), ("weighted_f1", 0.777 + offset),
                                     ("matthews_correlation", 0.482 + offset))}
    card = ModelCard(render_model_card(tmp_path / "mrpc", results, repo_id="alice/mrpc", datasets="nyu-mll/glue"))
    _, read_back = model_index_to_eval_results(card.data.to_dict()["model-index"])
    scores = {(r.dataset_split, r.metric_type): r.metric_value for r in read_back}
    assert scores == {(split, metric): results[f"{prefix}_{metric}"]
                      for prefix, split in (("eval", "validation"), ("test", "test"))
                      for metric in ("accuracy", "f1", "macro_f1", "matthews_correlation")}
    assert "positive class, `equivalent` (label id 1)" in card.text
    assert "| validation | F1 (positive class) | 0.8510 |" in card.text
    three = save_classifier(tmp_path / "three")
    multi_class = {k: v for k, v in results.items() if not k.endswith("_f1") or "macro" in k or "weighted" in k}
    text = render_model_card(three, multi_class, repo_id="alice/three")
    assert "positive class" not in text and "| validation | Matthews correlation | 0.4820 |" in text


# --- bad input: a clear error and not one request ---------------------------------------------------------------------
@pytest.fixture
def model_dir(tmp_path):
    save_recipe_output(tmp_path / "model", seed=0, results=RESULTS_A)
    return tmp_path / "model"


def test_no_token_fails_before_any_request(hub, model_dir):
    with pytest.raises(ValueError, match="hf auth login"):
        push_model(model_dir, "alice/tiny-ner")
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", ["tiny-ner", "alice/tiny/ner", "alice/tiny ner", "alice/tiny--ner", "/tiny", ""])
def test_malformed_repo_id_fails_before_any_request(hub, model_dir, repo_id):
    with pytest.raises(ValueError, match="repo id"):
        push_model(model_dir, repo_id, token=TOKEN)
    assert hub.requests == []


@pytest.mark.parametrize("missing, named", [("crf.py", "crf.py.*relative import in modeling_bert_crf.py"),
                                            ("modeling_bert_crf.py", "modeling_bert_crf.py.*auto_map"),
                                            ("configuration_bert_crf.py", "configuration_bert_crf.py.*AutoConfig"),
                                            ("tokenizer.json", "tokenizer"), ("config.json", "config.json")])
def test_incomplete_folder_names_the_missing_file(hub, model_dir, missing, named):
    (model_dir / missing).unlink()
    with pytest.raises(ValueError, match=named):
        push_model(model_dir, "alice/tiny-ner", token=TOKEN)
    assert hub.requests == []


def test_pickle_weights_only_are_refused(hub, model_dir):
    state = BertCrfForTokenClassification.from_pretrained(model_dir).state_dict()
    (model_dir / "model.safetensors").unlink()
    torch.save(state, model_dir / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"no model\.safetensors.*pytorch_model\.bin"):
        push_model(model_dir, "alice/tiny-ner", token=TOKEN)
    (model_dir / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        push_model(model_dir, "alice/tiny-ner", token=TOKEN)
    assert hub.requests == []


def test_the_hub_refuses_a_bad_token_and_a_foreign_namespace(hub, model_dir):
    with pytest.raises(HfHubHTTPError) as error:
        push_model(model_dir, "alice/tiny-ner", token="hf_wrong")
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        push_model(model_dir, "alice/tiny-ner", token="hf_loopback_bob")
    assert error.value.response.status_code == 403
    sha = push_model(model_dir, "acme/tiny-ner", token=TOKEN, private=True, revision="experiment")
    api = HfApi(token=TOKEN)
    assert api.model_info("acme/tiny-ner", revision="experiment").sha == sha
    assert api.list_repo_files("acme/tiny-ner") == [".gitattributes"]  # main untouched
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token="hf_loopback_bob").model_info("acme/tiny-ner")  # private: not for bob


# --- the Space ----------------------------------------------------------------------------------------------------
# The snapshot's app, in a process of its own: each task's page function on its model, then the package files loaded.
SPACE_RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("space_app", "app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
out = {}
for task, model_dir in json.loads(sys.argv[1]).items():
    loaded = app.load_model(model_dir)
    assert loaded.error is None and loaded.task == task, (task, loaded)
    if task == "ner":
        out[task] = app.tag_entities(loaded.predictor, "john smith visited paris", 1000)[2]
    elif task == "classification":
        out[task] = app.classify_text(loaded.predictor, "the team won the cup final", 1000)[1]
    else:
        out[task] = app.answer_question(loaded.predictor, "where did john go ?", "john visited paris on monday .", 1000)[2]
out["modules"] = sorted(m.__file__ for name, m in sys.modules.items() if name.split(".")[0] == "hf_bert_tasks")
print(json.dumps(out))
"""


def requirement_closure(requirements: Path) -> set[str]:
    """Distributions that `requirements` names (plus gradio, which the Space SDK brings) and everything they depend
    on, as installed here (normalised names)."""
    from importlib.metadata import PackageNotFoundError, requires

    def normal(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    pending = ["gradio"] + [re.match(r"[A-Za-z0-9_.-]+", line).group(0) for line in requirements.read_text().splitlines()
                            if line.strip() and not line.startswith(("#", "-"))]
    closure = set()
    while pending:
        name = normal(pending.pop())
        if name in closure:
            continue
        closure.add(name)
        try:
            dependencies = requires(name) or []
        except PackageNotFoundError:
            continue
        pending.extend(re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in dependencies if "extra ==" not in d)
    return closure


def top_level_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports at module level of a file (what importing it needs)."""
    import ast

    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module != "__future__":
            names.add(node.module.split(".")[0])
    return names


def test_push_space_uploads_what_the_app_needs_and_the_snapshot_serves_every_task(hub, tmp_path):
    from importlib.metadata import packages_distributions

    space = tmp_path / "space"
    space.mkdir()
    for name in ("app.py", "requirements.txt", "README.md"):
        shutil.copy(ROOT / "spaces" / name, space / name)
    (space / "notes.txt").write_text("local notes, not for the Space\n")
    (space / "__pycache__").mkdir()
    (space / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    # First an app that also imports the vocabulary tools, then the real one: what it no longer needs is deleted.
    real_app = (space / "app.py").read_text()
    (space / "app.py").write_text(real_app.replace("import gradio as gr", "import hf_bert_tasks.vocab\nimport gradio as gr"))
    push_space(space, "alice/ner-demo", model_id="alice/tiny-ner", token=TOKEN)
    api = HfApi(token=TOKEN)
    assert "hf_bert_tasks/vocab.py" in api.list_repo_files("alice/ner-demo", repo_type="space")
    (space / "app.py").write_text(real_app)
    sha = push_space(space, "alice/ner-demo", model_id="alice/tiny-ner", token=TOKEN)
    info = api.space_info("alice/ner-demo")
    assert info.sdk == "gradio" and info.sha == sha
    modules = space_package_modules(space / "app.py")
    assert set(api.list_repo_files("alice/ner-demo", repo_type="space")) == {
        ".gitattributes", "README.md", "app.py", "requirements.txt", *modules}
    # Only what the app imports: the training, vocabulary, Hub, LoRA and export code stays home.
    for unneeded in ("hub.py", "vocab.py", "lora.py", "export.py", "recipe.py", "pretraining/training.py",
                     "ner/metrics.py", "qa/metrics.py"):
        assert f"hf_bert_tasks/{unneeded}" not in modules, unneeded
    for needed in ("__init__.py", "predictor/auto.py", "ner/predictor.py", "classification/predictor.py",
                   "qa/predictor.py", "modeling/modeling_bert_crf.py"):
        assert f"hf_bert_tasks/{needed}" in modules, needed
    # Every third-party module those files import at load time is installed by requirements.txt (or gradio).
    distributions = packages_distributions()
    closure = requirement_closure(space / "requirements.txt")
    for name, path in modules.items():
        for top in top_level_imports(path) - set(sys.stdlib_module_names) - {"hf_bert_tasks"}:
            assert any(re.sub(r"[-_.]+", "-", d).lower() in closure for d in distributions.get(top, [top])), (
                f"{name} imports {top}, which requirements.txt does not install")

    # The snapshot runs every kind of page from the uploaded files, and loads no package file it was not given.
    models = {"ner": tmp_path / "ner", "classification": tmp_path / "classification", "qa": tmp_path / "qa"}
    save_recipe_output(models["ner"], seed=0, results=RESULTS_A)
    save_classifier(models["classification"])
    save_qa_model(models["qa"])
    snapshot = Path(snapshot_download("alice/ner-demo", repo_type="space", cache_dir=tmp_path / "cache"))
    check = subprocess.run(
        [PYTHON, "-c", SPACE_RUN, json.dumps({task: str(path) for task, path in models.items()})], cwd=snapshot,
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
             "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
             "HF_HOME": str(tmp_path / "home")})
    assert check.returncode == 0, check.stderr[-3000:]
    ran = json.loads(check.stdout.strip().splitlines()[-1])
    assert ran["ner"].startswith("Found ") and ran["classification"].startswith("Label: sports")
    assert ran["qa"].startswith("Answer at characters 13-18")
    # (no resolve(): snapshot files are symlinks into the cache's blobs)
    loaded = {Path(file).absolute() for file in ran["modules"]}
    assert all(file.is_relative_to(snapshot.absolute()) for file in loaded), loaded
    assert {file.relative_to(snapshot.absolute()).as_posix() for file in loaded} <= set(modules)

    card = SpaceCard.load("alice/ner-demo", repo_type="space")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py" and card.data.models == ["alice/tiny-ner"]
    assert card.data.title and "MODEL_ID" in card.text and "alice/tiny-ner" in card.text
    assert "{{" not in card.content
    assert api.get_space_variables("alice/ner-demo")["MODEL_ID"].value == "alice/tiny-ner"
    # Updating the Space with another model: same repo, new commit, variable and card follow.
    push_space(space, "alice/ner-demo", model_id="acme/other-classifier", token=TOKEN)
    assert api.get_space_variables("alice/ner-demo")["MODEL_ID"].value == "acme/other-classifier"
    assert SpaceCard.load("alice/ner-demo", repo_type="space").data.models == ["acme/other-classifier"]
    with pytest.raises(ValueError, match="model id"):
        push_space(space, "alice/ner-demo", model_id="not a model", token=TOKEN)
    (space / "app.py").unlink()
    requests = len(hub.requests)
    with pytest.raises(ValueError, match="app.py"):
        push_space(space, "alice/ner-demo", model_id="alice/tiny-ner", token=TOKEN)
    assert len(hub.requests) == requests


def test_project_space_folder_renders(tmp_path):
    """The project's own spaces/ folder (app.py and requirements.txt come from the demo's developer)."""
    from hf_bert_tasks.hub import render_space_card

    text = render_space_card(ROOT / "spaces" / "README.md", repo_id="alice/ner-demo", model_id="alice/tiny-ner")
    data = SpaceCard(text).data
    assert (data.sdk, data.app_file, data.models) == ("gradio", "app.py", ["alice/tiny-ner"])
    if not all((ROOT / "spaces" / name).is_file() for name in ("app.py", "requirements.txt")):
        pytest.skip("spaces/app.py or spaces/requirements.txt is not written yet")


# --- the loopback server itself -------------------------------------------------------------------------------------
def test_server_answers_like_the_hub(hub, tmp_path):
    api = HfApi(token=TOKEN)
    api.create_repo("alice/files")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_repo("alice/files")
    assert error.value.response.status_code == 409
    api.create_repo("alice/files", exist_ok=True)
    data = bytes(range(256)) * 40
    sha = api.upload_file(path_or_fileobj=data, path_in_repo="deep/dir/blob.bin", repo_id="alice/files").oid
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(token=False).upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="alice/files")
    assert error.value.response.status_code == 401
    assert [e.path for e in api.list_repo_tree("alice/files", recursive=True)] == [
        ".gitattributes", "deep", "deep/dir", "deep/dir/blob.bin"]
    assert [e.path for e in api.list_repo_tree("alice/files", path_in_repo="deep")] == ["deep/dir"]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("alice/files", path_in_repo="additional_chat_templates"))
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("alice/files", "missing.txt", cache_dir=tmp_path, endpoint=hub.url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/files", "deep/dir/blob.bin", revision="nope", cache_dir=tmp_path, endpoint=hub.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/absent")
    url = f"{hub.url}/alice/files/resolve/{sha}/deep/dir/blob.bin"
    status, headers, _ = fetch(url, method="HEAD")
    assert headers["X-Repo-Commit"] == sha and headers["ETag"] == f'"{git_blob_sha1(data)}"'
    assert int(headers["Content-Length"]) == len(data)
    status, headers, body = fetch(url, Range="bytes=100-199")
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert fetch(url, Range="bytes=-10")[2] == data[-10:]
    assert fetch(url, Range=f"bytes={len(data)}-")[0] == 416
    info = api.get_paths_info("alice/files", ["deep/dir/blob.bin", "deep", "nothing"])
    assert [(type(e).__name__, e.path) for e in info] == [("RepoFile", "deep/dir/blob.bin"), ("RepoFolder", "deep")]
    assert api.list_repo_refs("alice/files").branches[0].target_commit == sha
    assert hub.unhandled == []


def fetch(url: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    """A plain HTTP request (standard library): status, headers, body; error statuses are returned, not raised."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- command line ---------------------------------------------------------------------------------------------------
def test_command_line_help(capsys):
    from hf_bert_tasks.hub import main

    for argv in (["--help"], ["push-model", "--help"], ["push-space", "--help"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 0
    text = capsys.readouterr().out
    for flag in ("push-model", "push-space", "--dataset", "--language", "--base-model", "--revision", "--model-id"):
        assert flag in text, flag


def test_command_line_without_token_exits_with_the_reason(hub, model_dir, capsys):
    from hf_bert_tasks.hub import main

    with pytest.raises(SystemExit) as exit:
        main(["push-model", str(model_dir), "alice/cli-ner"])
    assert "No Hugging Face token" in str(exit.value.code) and "hf auth login" in str(exit.value.code)
    assert hub.requests == []


def test_command_line_push_reads_endpoint_and_token_from_the_environment(tmp_path, model_dir):
    server = start_hub(tmp_path / "hub")
    try:
        env = {**hub_env(server, tmp_path / "home"), "HF_TOKEN": TOKEN}
        result = subprocess.run([PYTHON, "-m", "hf_bert_tasks.hub", "push-model", str(model_dir), "alice/cli-ner",
                                 "--dataset", "conll2003", "--language", "en"],
                                capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        sha = result.stdout.strip().splitlines()[-1]
        assert server.store.repo("model", "alice/cli-ner")["refs"]["main"] == sha
        assert server.unhandled == []
    finally:
        server.stop()


# --- the recipe's --push_to_hub ---------------------------------------------------------------------------------------
def run_ner_recipe(tiny_encoder_dir, out, env, *extra):
    args = [PYTHON, str(ROOT / "recipes" / "ner.py"), "--model_name_or_path", str(tiny_encoder_dir),
            "--train_file", str(ROOT / "hf_bert_tasks" / "sample_data" / "en_train.conll"),
            "--validation_file", str(ROOT / "hf_bert_tasks" / "sample_data" / "en_dev.conll"),
            "--max_train_samples", "32", "--max_eval_samples", "20", "--num_train_epochs", "1", "--do_train",
            "--do_eval", "--output_dir", str(out), "--save_strategy", "no", "--report_to", "none", "--use_cpu",
            *extra]
    return subprocess.run(args, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1",
                                                                    "PYTHONPATH": str(ROOT)})  # this checkout


def test_recipe_pushes_the_trained_model_with_its_card(hub, tiny_encoder_dir, tmp_path):
    env = hub_env(hub, tmp_path / "home")
    result = run_ner_recipe(tiny_encoder_dir, tmp_path / "out", env, "--push_to_hub", "--hub_model_id",
                            "alice/recipe-ner", "--hub_token", TOKEN)
    assert result.returncode == 0, result.stderr[-3000:]
    api = HfApi(token=TOKEN)
    files = set(api.list_repo_files("alice/recipe-ner"))
    assert {"config.json", "model.safetensors", "modeling_bert_crf.py", "crf.py", "README.md"} <= files
    # The recipe saved the Inference Endpoints files with the model; they are pushed as saved.
    assert {"handler.py", "texts.py", "qa_spans.py", "threads.py", "requirements.txt"} <= files
    assert (tmp_path / "out" / "handler.py").is_file()
    assert not any(name.startswith("checkpoint-") or name.endswith(".bin") for name in files)
    card = ModelCard.load("alice/recipe-ner")
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    f1_scores = [r.metric_value for r in card.data.eval_results if r.metric_type == "f1"]
    assert f1_scores and f1_scores[0] == pytest.approx(results["eval_f1"])


def test_recipe_without_a_token_stops_before_training(hub, tiny_encoder_dir, tmp_path):
    env = hub_env(hub, tmp_path / "home")
    result = run_ner_recipe(tiny_encoder_dir, tmp_path / "out", env, "--push_to_hub", "--hub_model_id",
                            "alice/recipe-ner")
    assert result.returncode != 0 and "hf auth login" in result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists() and hub.requests == []


@pytest.mark.parametrize("recipe, data, metric", [
    ("classify.py", ["--train_file", ROOT / "tests" / "fixtures" / "classify_news_train.txt",
                     "--validation_file", ROOT / "tests" / "fixtures" / "classify_news_dev.txt"], "accuracy"),
    ("qa.py", ["--train_file", ROOT / "tests" / "fixtures" / "qa_squad_v1.json", "--validation_file",
               ROOT / "tests" / "fixtures" / "qa_squad_v1.json", "--max_seq_length", "48", "--doc_stride", "8",
               "--max_question_length", "16"],
     "exact_match"),
])
def test_classify_and_qa_recipes_push_the_model_with_its_card(hub, tiny_encoder_dir, tmp_path, recipe, data, metric):
    env, out, repo = hub_env(hub, tmp_path / "home"), tmp_path / "out", f"alice/{recipe[:-3]}"
    args = [PYTHON, str(ROOT / "recipes" / recipe), "--model_name_or_path", str(tiny_encoder_dir), *map(str, data),
            "--num_train_epochs", "1", "--do_train", "--do_eval", "--output_dir", str(out), "--save_strategy", "no",
            "--report_to", "none", "--use_cpu", "--push_to_hub", "--hub_model_id", repo, "--hub_token", TOKEN]
    result = subprocess.run(args, capture_output=True, text=True,
                            env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})  # this checkout's package
    assert result.returncode == 0, result.stderr[-3000:]
    files = set(HfApi(token=TOKEN).list_repo_files(repo))
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md", "all_results.json"} <= files
    assert {"handler.py", "texts.py", "qa_spans.py", "threads.py", "requirements.txt"} <= files
    assert (out / "handler.py").is_file()
    assert not any(name.startswith("checkpoint-") or name.endswith((".bin", ".tsv")) for name in files)
    card = ModelCard.load(repo)
    results = json.loads((out / "all_results.json").read_text())
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results if r.dataset_split == "validation"}
    assert scores[metric] == pytest.approx(results[f"eval_{metric}"])
    assert card.data.pipeline_tag == ("text-classification" if recipe == "classify.py" else "question-answering")
    # What was pushed reads back from the Hub bit-exact.
    assert (json.loads(Path(hf_hub_download(repo, "config.json")).read_text())
            == json.loads((out / "config.json").read_text()))
    pushed = load_file(hf_hub_download(repo, "model.safetensors"))
    local = load_file(out / "model.safetensors")
    assert pushed.keys() == local.keys() and all(torch.equal(pushed[k], local[k]) for k in local)
