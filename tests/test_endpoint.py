"""The Inference Endpoints handler (hf_bert_tasks/modeling/handler.py) that ships with every model: pushed to the
loopback Hub, downloaded into an empty cache and run in a fresh process where `import hf_bert_tasks` fails, loaded the
way Inference Endpoints load it (a file of its own, `EndpointHandler(path)`, then `handler(data)`)."""

import json
import os
import subprocess
import tomllib

import pytest

from conftest import PYTHON, ROOT, without_package
from hf_bert_tasks.hub import ENDPOINT_REQUIREMENTS, endpoint_files, push_model, write_endpoint_files
from test_hub import TOKEN, hub, hub_env, save_recipe_output  # noqa: F401  (hub: the loopback Hub fixture)
from tiny_models import CLASSES, QUESTIONS, save_classifier, save_qa_model

NER_TEXTS = ["john smith visited paris with the ibm team", "mary met anna in tokyo", "", "peter weber"]
CLASS_TEXTS = ["the team won the cup final", "the bank said the company was new", "   ", "the minister told"]
# Pairs longer than the classifier's 16 tokens: both texts long, and a short first text with a long second one.
LONG_PAIRS = [{"text": "the team won the cup final on monday", "text_pair": "the president met the minister in paris"},
              {"text": "the bank", "text_pair": "the club won the league and the team won the cup final on friday"}]
# For each model: (request, what the script also computes with the plain pipeline for comparison).
ENDPOINT_SCRIPT = without_package("""
import importlib.util, json, sys
from huggingface_hub import snapshot_download
from transformers import pipeline

args = json.loads(sys.argv[1])
out = {}
for repo, requests in args["requests"].items():
    path = snapshot_download(repo, cache_dir=args["cache"])
    spec = importlib.util.spec_from_file_location("handler", f"{path}/handler.py")  # as Inference Endpoints do
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    endpoint = handler.EndpointHandler(path)
    answers = []
    for data in requests:
        try:
            answers.append({"result": endpoint(data)})
        except (TypeError, ValueError) as error:
            answers.append({"error": f"{type(error).__name__}: {error}"})
    calls = args["pipeline"].get(repo, [])
    plain = pipeline(endpoint.task, model=path, trust_remote_code=True) if calls else None
    out[repo] = {"task": endpoint.task, "answers": answers,
                 "pipeline": [plain(inputs, **parameters) for inputs, parameters in calls]}
print(json.dumps(out))
""")


# The handler's torch threads under each setting of THREADS and WEB_CONCURRENCY (None: unset), from torch at 3.
THREADS_SCRIPT = without_package("""
import importlib.util, json, os, sys
import torch

path, settings = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("handler", f"{path}/handler.py")
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
out = []
for setting in settings:
    torch.set_num_threads(3)
    for name, value in zip(("THREADS", "WEB_CONCURRENCY"), setting):
        os.environ.pop(name, None) if value is None else os.environ.update({name: value})
    try:
        out.append([handler.EndpointHandler(path).threads, torch.get_num_threads()])
    except ValueError as error:
        out.append(str(error))
print(json.dumps(out))
""")


def rounded(value):
    """JSON results with scores rounded (pipelines and JSON agree to float32 precision)."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    """Three models (a CRF NER model, a classifier, a QA model) saved without the handler, pushed (the push adds it),
    and the answers of their handlers and plain pipelines in a process without the package."""
    from test_hub import point_client_at, start_hub

    tmp = tmp_path_factory.mktemp("endpoints")
    server = start_hub(tmp / "hub")
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_client_at(server, monkeypatch)
        save_recipe_output(tmp / "ner", seed=0, results={})
        save_classifier(tmp / "classifier")
        save_qa_model(tmp / "qa")
        for name in ("ner", "classifier", "qa"):
            assert not (tmp / name / "handler.py").exists()
            push_model(tmp / name, f"alice/{name}", token=TOKEN, language="en")
    qa_pairs = [{"question": q, "context": c} for q, c, _ in QUESTIONS]
    requests = {
        "alice/ner": [{"inputs": NER_TEXTS[0]}, {"inputs": NER_TEXTS},
                      {"inputs": NER_TEXTS, "parameters": {"aggregation_strategy": "none", "batch_size": 2}},
                      {"inputs": 17}, {"inputs": ["ok", None]}, {"inputs": "x", "parameters": [1]}],
        "alice/classifier": [{"inputs": CLASS_TEXTS[0]}, {"inputs": CLASS_TEXTS},
                             {"inputs": CLASS_TEXTS[:2], "parameters": {"top_k": None}},
                             {"inputs": {"text": "the team won", "text_pair": "the cup final"}},
                             {"inputs": {"txt": "the team"}}, {"inputs": ["fine", {"text": 3}]},
                             {"inputs": LONG_PAIRS}],
        "alice/qa": [{"inputs": qa_pairs[0]}, qa_pairs[1], {"inputs": qa_pairs},
                     {"inputs": qa_pairs, "parameters": {"max_answer_length": 1, "batch_size": 3}},
                     {"inputs": "who visited paris ?"}, {"inputs": [qa_pairs[0], {"question": "who ?"}]},
                     {"inputs": {"question": " ", "context": "john visited paris ."}},
                     {"inputs": qa_pairs[0], "parameters": {"top_k": 2}},
                     {"inputs": {"question": "the " * 17, "context": "john visited paris ."}}],
    }
    pipeline_calls = {
        "alice/ner": [(NER_TEXTS, {"aggregation_strategy": "simple"}), (NER_TEXTS, {})],
        "alice/classifier": [([t for t in CLASS_TEXTS if t.strip()], {}),
                             (CLASS_TEXTS[:2], {"top_k": None}),
                             ({"text": "the team won", "text_pair": "the cup final"}, {})],
    }
    args = {"requests": requests, "pipeline": pipeline_calls, "cache": str(tmp / "cache")}
    result = subprocess.run([PYTHON, "-c", ENDPOINT_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                            cwd=tmp, env=hub_env(server, tmp / "home"), timeout=600)
    server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_ner_endpoint_returns_the_pipelines_entities(endpoints):
    ner = endpoints["alice/ner"]
    one, batch, words, *errors = ner["answers"]
    simple, tags = ner["pipeline"]
    assert ner["task"] == "token-classification"
    assert rounded(batch["result"]) == rounded(simple) and any(simple)  # entities to compare, not empty lists
    assert rounded(one["result"]) == rounded(simple[0]) and batch["result"][2] == []
    assert rounded(words["result"]) == rounded(tags)  # parameters reach the pipeline
    assert {"entity_group", "score", "word", "start", "end"} == set(simple[0][0])
    assert errors == [{"error": "TypeError: inputs must be a str or a list of str, got int"},
                      {"error": "TypeError: inputs[1] must be a str, got NoneType"},
                      {"error": "TypeError: 'parameters' must be a JSON object, got list"}]


def test_classification_endpoint_returns_the_pipelines_labels(endpoints):
    classifier = endpoints["alice/classifier"]
    one, batch, top, pair, *errors, long_pairs = classifier["answers"]
    kept, every_label, plain_pair = classifier["pipeline"]
    assert classifier["task"] == "text-classification"
    # The blank text gets no prediction; the others what the pipeline gives, in order.
    assert rounded(batch["result"]) == rounded(kept[:2] + [None] + kept[2:])
    assert rounded(one["result"]) == rounded([kept[0]])
    assert [r["label"] for r in kept[:2]] == ["sports", "business"]  # the tiny model's training examples
    assert rounded(top["result"]) == rounded(every_label) and {r["label"] for r in top["result"][0]} == set(CLASSES)
    assert rounded(pair["result"]) == rounded(plain_pair) and plain_pair["label"] == "sports"
    assert errors == [{"error": "ValueError: inputs must have the keys 'text' and optionally 'text_pair', got ['txt']"},
                      {"error": "TypeError: inputs[1]['text'] must be a str, got int"}]


def test_classification_endpoint_cuts_pairs_as_the_package(endpoints, tmp_path):
    """Pairs that do not fit: the handler's pipeline (the tokenizer's `longest_first`) and TextClassifier's
    `truncate` reading (`classification.inputs.pair_tokens_kept`) cut them alike, so they answer alike."""
    from hf_bert_tasks.classification.predictor import TextClassifier

    classifier = TextClassifier.from_pretrained(str(save_classifier(tmp_path / "classifier")), long_text="truncate")
    expected = classifier([p["text"] for p in LONG_PAIRS], [p["text_pair"] for p in LONG_PAIRS])
    answers = endpoints["alice/classifier"]["answers"][-1]["result"]
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert [a["score"] for a in answers] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_qa_endpoint_answers_as_the_packages_predictor_in_the_trained_windows(endpoints, tmp_path):
    from hf_bert_tasks.qa.predictor import answer_questions

    qa = endpoints["alice/qa"]
    one, bare, batch, one_token, *errors = qa["answers"]
    model = save_qa_model(tmp_path / "qa")
    questions, contexts = [q for q, _, _ in QUESTIONS], [c for _, c, _ in QUESTIONS]
    answers = answer_questions(model, questions, contexts)
    short = answer_questions(model, questions, contexts, max_answer_length=1)
    assert qa["task"] == "question-answering"
    assert rounded(batch["result"]) == rounded(answers)
    assert [a["answer"] for a in batch["result"]] == [a for _, _, a in QUESTIONS]  # the long context's answer too
    assert rounded(one["result"]) == rounded(answers[0]) and rounded(bare["result"]) == rounded(answers[1])
    assert rounded(one_token["result"]) == rounded(short) and short != answers  # parameters reach the decoding
    assert errors[0] == {"error": "TypeError: inputs must be a {'question': str, 'context': str} object or a list "
                                  "of them, got str"}
    assert errors[1] == {"error": "ValueError: inputs[1] must be an object with exactly the keys 'question' and "
                                  "'context', got ['question']"}
    assert errors[2] == {"error": "ValueError: inputs['question'] is empty or blank: an answer needs a question "
                                  "and a context"}
    assert errors[3]["error"].startswith("ValueError: unknown parameters ['top_k']; a QA endpoint takes ")
    assert errors[4] == {"error": "ValueError: inputs['question'] has 17 tokens; this model reads questions of at "
                                  "most 16 (max_question_length)"}


def test_endpoint_files_are_written_once_for_task_models_only(tmp_path):
    save_classifier(tmp_path / "classifier")
    assert write_endpoint_files(tmp_path / "classifier") == ["handler.py", "texts.py", "qa_spans.py", "threads.py",
                                                             "requirements.txt"]
    files = endpoint_files()
    for name, text in files.items():
        assert (tmp_path / "classifier" / name).read_text(encoding="utf-8") == text
    (tmp_path / "classifier" / "handler.py").write_text("# the user's own\n")
    assert write_endpoint_files(tmp_path / "classifier") == []  # nothing overwritten
    assert (tmp_path / "classifier" / "handler.py").read_text() == "# the user's own\n"
    from transformers import BertModel

    from conftest import tiny_bert_config

    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "encoder")  # no task: no endpoint
    assert write_endpoint_files(tmp_path / "encoder") == []
    # requirements.txt states the ranges the package itself declares for torch and transformers
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in ENDPOINT_REQUIREMENTS:
        assert any(d.startswith(requirement) for d in declared), requirement
    assert files["requirements.txt"].split() == list(ENDPOINT_REQUIREMENTS)


def test_handler_imports_only_transformers_and_the_standard_library():
    from test_remote_code import ALLOWED_ROOTS, imports_of

    source = (ROOT / "hf_bert_tasks" / "modeling" / "handler.py").read_text(encoding="utf-8")
    assert all(level == 0 and module.split(".")[0] in ALLOWED_ROOTS for level, module in imports_of(source))


def test_endpoint_threads_are_its_variables_or_the_cores_shared_among_its_workers(tmp_path):
    """`THREADS`, else the usable cores divided among `WEB_CONCURRENCY` workers, else torch's own: in a process without
    the package, as Inference Endpoints load the handler."""
    from hf_bert_tasks.modeling.threads import usable_cores

    save_classifier(tmp_path / "classifier")
    write_endpoint_files(tmp_path / "classifier")
    settings = [[None, None], ["1", None], ["2", "2"], [None, "2"], [None, "64"], ["0", None], [None, "many"]]
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "THREADS")}
    result = subprocess.run([PYTHON, "-c", THREADS_SCRIPT, str(tmp_path / "classifier"), json.dumps(settings)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    shared = max(1, usable_cores() // 2)
    assert json.loads(result.stdout.splitlines()[-1]) == [
        [3, 3], [1, 1], [2, 2], [shared, shared], [1, 1],
        "the endpoint variable THREADS must be a whole number of at least 1, got '0'",
        "the endpoint variable WEB_CONCURRENCY must be a whole number of at least 1, got 'many'"]
