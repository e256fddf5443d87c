"""The demo Space (`spaces/app.py`) run for real: servers on 127.0.0.1, called with `gradio_client` and driven in
headless Chromium, for each kind of model the app serves.

The models are the tiny random BERT of conftest with a CRF head (trained here for about a second on a handful of
sentences until it tags the names in them), and the classifier and QA model of tests/tiny_models.py (trained the same
way; fixed seeds, one thread: the same weights every run). Each app is started the way a Space starts it (`python
spaces/app.py`, model and port from the environment), the three side by side; the model-cannot-load cases use
`build_demo` in this process. The browser test needs Debian's chromium at /usr/bin/chromium and the `playwright`
package (not `playwright install`); it is skipped, saying which is missing, without them.
"""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from tiny_models import CLASSES, save_classifier, save_qa_model, train_briefly
from transformers import BertForMaskedLM

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
from gradio_client import Client  # noqa: E402

from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification  # noqa: E402
from hf_bert_tasks.classification.predictor import TextClassifier  # noqa: E402
from hf_bert_tasks.modeling.windows import WindowCollator, encode_words  # noqa: E402
from hf_bert_tasks.ner.predictor import NerPredictor  # noqa: E402
from hf_bert_tasks.qa.predictor import answer_questions  # noqa: E402

# gradio's queue calls pandas 3 with options it deprecates; nothing this project can change.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:gradio\.queueing")

APP = ROOT / "spaces" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
# (words separated by spaces, one tag per word); Chinese is split into characters as `tagging.split_words` does.
TRAINING = [
    ("john visited paris on monday .", "B-PER O B-LOC O O O"),
    ("mary met anna in london .", "B-PER O B-PER O B-LOC O"),
    ("peter smith said the bank in berlin was new .", "B-PER I-PER O O O O B-LOC O O O"),
    ("the team from tokyo visited lisbon .", "O O O B-LOC O B-LOC O"),
    ("anna weber told john in toronto .", "B-PER I-PER O B-PER O B-LOC O"),
    ("the president met the minister .", "O O O O O O"),
    ("paris is a city .", "B-LOC O O O O"),
    ("mary smith was in paris and london .", "B-PER I-PER O O B-LOC O B-LOC O"),
    ("明 朝 建 立 于 1368 年 ， 开 国 皇 帝 是 朱 元 璋 。", "O O O O O O O O O O O O O B-PER I-PER I-PER O"),
    ("朱 元 璋 在 北 京 。", "B-PER I-PER I-PER O B-LOC I-LOC O"),
    ("李 明 在 上 海 银 行 。", "B-PER I-PER O B-LOC I-LOC O O O"),
]
ENGLISH = "John visited Paris on Monday. Mary met Anna in London."
CHINESE = "明朝建立于1368年，开国皇帝是朱元璋。"
APP_ENV = {
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="module")
def ner_model_dir(tmp_path_factory) -> Path:
    """A saved BERT+CRF folder (tiny encoder) that tags the names of TRAINING: 120 Adam steps on one batch."""
    torch.manual_seed(0)
    config = BertCrfConfig(
        encoder=tiny_bert_config(), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = BertCrfForTokenClassification(config)
    tokenizer = tiny_tokenizer()
    features = encode_words(
        tokenizer, [words.split() for words, _ in TRAINING], max_length=64, stride=16, scheme="BIO",
        strategy="first", label2id=config.label2id, tags=[tags.split() for _, tags in TRAINING],
    )
    collate = WindowCollator(tokenizer.pad_token_id)
    batch = collate([{key: features[key][i] for key in collate.pad_values if key in features}
                     for i in range(len(features["input_ids"]))])
    train_briefly(model, batch, steps=120)
    found = {(e["type"], e["text"]) for e in NerPredictor(model, tokenizer)(ENGLISH + " " + CHINESE)}
    assert {("LOC", "Paris"), ("PER", "John"), ("PER", "朱元璋")} <= found, f"the fixture model did not learn: {found}"
    path = tmp_path_factory.mktemp("demo-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None = None, log: Path | None = None, timeout: float = 120):
    """Poll `url` until it answers 200; fail with the app's log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"the app did not answer at {url} within {timeout} s:\n{log.read_text() if log else ''}")


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> Path:
    return save_classifier(tmp_path_factory.mktemp("demo-classifier"))


@pytest.fixture(scope="module")
def qa_model_dir(tmp_path_factory) -> Path:
    return save_qa_model(tmp_path_factory.mktemp("demo-qa"))


@pytest.fixture(scope="module")
def app_urls(ner_model_dir, classifier_dir, qa_model_dir, tmp_path_factory):
    """`python spaces/app.py` for each model, as a Space runs it (model and address from the environment); the three
    start side by side. {task: url}."""
    logs = tmp_path_factory.mktemp("demo-log")
    started = {}
    try:
        for task, model_dir in (("ner", ner_model_dir), ("classification", classifier_dir), ("qa", qa_model_dir)):
            port = free_port()
            env = {**os.environ, **APP_ENV, "MODEL_ID": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port)}
            env.pop("MAX_INPUT_CHARS", None)  # the default limit is what the tests expect
            with open(logs / f"{task}.log", "w") as out:
                process = subprocess.Popen([PYTHON, str(APP)], cwd=ROOT, env=env, stdout=out,
                                           stderr=subprocess.STDOUT)
            started[task] = (process, f"http://127.0.0.1:{port}")
        for task, (process, url) in started.items():
            wait_until_up(url + "/config", process, logs / f"{task}.log")
        yield {task: url for task, (_, url) in started.items()}
    finally:
        for process, _ in started.values():
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def app_url(app_urls):
    return app_urls["ner"]


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False, download_files=False, analytics_enabled=False)


def tag(client: Client, text: str):
    """(highlight value, table rows, status line) from the app's NER endpoint."""
    highlight, table, status = client.predict(text, api_name="/tag_entities")
    return highlight, table["data"], status


def test_entities_match_the_predictor(client, ner_model_dir):
    predictor = NerPredictor.from_pretrained(str(ner_model_dir))
    # The long text needs many windows (the model's windows are 128 tokens): the app must not truncate it.
    long_text = " ".join([ENGLISH, CHINESE] * 60)
    for text in (ENGLISH, CHINESE, long_text):
        expected = predictor(text)
        assert expected, text
        highlight, rows, status = tag(client, text)
        assert [row[:4] for row in rows] == [[e["type"], e["text"], e["start"], e["end"]] for e in expected]
        assert [row[4] for row in rows] == pytest.approx([e["score"] for e in expected], abs=1e-4)
        assert status.startswith(f"Found {len(expected)} entit") and f"{len(text):,} characters" in status
        # The highlight is the input exactly, cut at the entities, each labelled "TYPE score".
        assert "".join(token["token"] for token in highlight) == text
        labelled = [(t["token"], t["class_or_confidence"]) for t in highlight if t["class_or_confidence"]]
        assert labelled == [(e["text"], f"{e['type']} {e['score']:.2f}") for e in expected]
    assert ["LOC", "Paris", 13, 18] in [row[:4] for row in tag(client, ENGLISH)[1]]


@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_empty_text_gets_a_message(client, text):
    highlight, rows, status = tag(client, text)
    assert highlight is None and rows == []
    assert status == "Enter some text to tag (the box is empty)."


def test_too_long_text_gets_a_message(client):
    highlight, rows, status = tag(client, "Paris " * 16_667)  # 100,002 characters
    assert highlight is None and rows == []
    assert status.startswith("The text is 100,002 characters long; this demo takes at most 20,000.")
    # One character under the limit is tagged.
    assert tag(client, "Paris".ljust(20_000))[2].startswith("Found 1 entity in 20,000 characters")


# --- text classification --------------------------------------------------------------------------------------------
SPORTS = "The team won the cup final."
POLITICS = "The president met the minister."


def classify(client: Client, text: str):
    """({label: probability}, headline label, status line) from the app's classification endpoint."""
    value, status = client.predict(text, api_name="/classify")
    if value.get("confidences") is None:  # the app cleared the label ({} or {"label": None})
        assert value.get("label") is None, value
        return None, None, status
    return {c["label"]: c["confidence"] for c in value["confidences"]}, value["label"], status


def test_classification_matches_the_text_classifier_with_its_long_text_settings(app_urls, classifier_dir):
    client = Client(app_urls["classification"], verbose=False, download_files=False, analytics_enabled=False)
    classifier = TextClassifier.from_pretrained(str(classifier_dir))
    assert (classifier.long_text, classifier.max_length, classifier.stride) == ("windows", 16, 4)
    # Sports first, then much politics: truncation sees the sports sentence only, the model's windows see it all.
    long_text = " ".join([SPORTS] + [POLITICS] * 12)
    truncated = TextClassifier.from_pretrained(str(classifier_dir), long_text="truncate")(long_text)
    assert truncated["label"] == "sports" and classifier(long_text)["label"] == "politics"
    for text, expected_label in ((SPORTS, "sports"), (POLITICS, "politics"), (long_text, "politics")):
        expected = classifier(text)
        assert expected["label"] == expected_label
        probabilities, headline, status = classify(client, text)
        assert headline == expected_label
        assert probabilities.keys() == set(CLASSES)
        assert probabilities == pytest.approx(expected["probabilities"], abs=1e-6)
        assert status.startswith(f"Label: {expected_label} ({expected['score']:.2f}); {len(text):,} characters")
    assert classify(client, "  ") == (None, None, "Enter some text to classify (the box is empty).")
    assert classify(client, "x" * 20_001)[2].startswith("The text is 20,001 characters long")


# --- question answering ---------------------------------------------------------------------------------------------
def ask(client: Client, question: str, context: str):
    """(highlight value, answer, status line) from the app's QA endpoint."""
    return client.predict(question, context, api_name="/answer")


def test_answers_match_answer_questions_and_are_highlighted_in_the_context(app_urls, qa_model_dir):
    client = Client(app_urls["qa"], verbose=False, download_files=False, analytics_enabled=False)
    # The long context needs several of the model's 48-token windows (stride 16); the answer is in a later one.
    long_context = "the president met the minister . " * 8 + "Mary met Anna in London."
    cases = [("Where did John go?", "John visited Paris on Monday.", "Paris"),
             ("Who met Anna?", "Mary met Anna in London.", "Mary"),
             ("Where did Mary meet Anna?", long_context, "London")]
    expected = answer_questions(str(qa_model_dir), [q for q, _, _ in cases], [c for _, c, _ in cases])
    assert [e["answer"] for e in expected] == [a for _, _, a in cases]
    for (question, context, _), answer in zip(cases, expected):
        highlight, text, status = ask(client, question, context)
        assert text == answer["answer"] == context[answer["start"]:answer["end"]]
        assert "".join(token["token"] for token in highlight) == context  # the context exactly, cut at the answer
        labelled = [(t["token"], t["class_or_confidence"]) for t in highlight if t["class_or_confidence"]]
        assert labelled == [(answer["answer"], f"answer {answer['score']:.2f}")]
        assert status.startswith(f"Answer at characters {answer['start']:,}-{answer['end']:,} "
                                 f"(score {answer['score']:.2f}); {len(context):,} characters of context")
    assert ask(client, "", "John visited Paris.") == (None, "", "Enter a question (the box is empty).")
    assert ask(client, "Who?", " ") == (None, "", "Enter the context to answer from (the box is empty).")
    assert ask(client, "Who?", "x" * 20_001)[2].startswith("The context is 20,001 characters long")


# --- one app, the page of the model's task ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app():
    """spaces/app.py imported as a module (it is a script in a folder, not part of the package)."""
    spec = importlib.util.spec_from_file_location("demo_space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def element_ids(demo) -> set[str]:
    return {c["props"]["elem_id"] for c in demo.config["components"] if c["props"].get("elem_id")}


def endpoints(demo) -> set[str]:
    return {d["api_name"] for d in demo.config["dependencies"] if d.get("api_name")}


def test_the_model_config_decides_the_page(app, ner_model_dir, classifier_dir, qa_model_dir, monkeypatch):
    monkeypatch.delenv("MAX_INPUT_CHARS", raising=False)
    inputs = {"ner": {"ner-text"}, "classification": {"cls-text"}, "qa": {"qa-question", "qa-context"}}
    pages = [("ner", ner_model_dir, "tag_entities"), ("classification", classifier_dir, "classify"),
             ("qa", qa_model_dir, "answer")]
    for task, model_dir, endpoint in pages:
        demo = app.build_demo(str(model_dir))
        ids = element_ids(demo)
        assert inputs[task] <= ids
        assert not set().union(*(inputs[other] for other in inputs if other != task)) & ids, (task, ids)
        assert endpoint in endpoints(demo)
        assert not {"tag_entities", "classify", "answer"} - {endpoint} & endpoints(demo)
        assert demo.title == app.TITLES[task]
    monkeypatch.setenv("MODEL_ID", str(qa_model_dir))  # the Space variable, when no id is passed
    assert "qa-question" in element_ids(app.build_demo())


def banner_and_status(demo, api_name: str, *inputs):
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/config")
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        banner = next(c["props"] for c in client.config["components"] if c["props"].get("elem_id") == "model-error")
        return banner, client.predict(*inputs, api_name=api_name)
    finally:
        demo.close()


def test_model_that_cannot_load_leaves_the_app_up_with_a_message(app, tmp_path, monkeypatch):
    monkeypatch.delenv("MAX_INPUT_CHARS", raising=False)
    missing = tmp_path / "no-such-model"
    banner, (highlight, table, status) = banner_and_status(app.build_demo(str(missing)), "/tag_entities", ENGLISH)
    assert banner["visible"] is True
    assert banner["value"].startswith(
        f"**The model `{missing}` could not be loaded.** FileNotFoundError: there is no folder {missing}")
    assert highlight is None and table["data"] == []
    assert status == banner["value"]


def test_model_of_another_task_is_named_and_a_broken_classifier_keeps_its_page(app, classifier_dir, tmp_path,
                                                                               monkeypatch):
    monkeypatch.delenv("MAX_INPUT_CHARS", raising=False)
    masked_lm = tmp_path / "masked-lm"
    BertForMaskedLM(tiny_bert_config()).save_pretrained(masked_lm)
    loaded = app.load_model(str(masked_lm))
    assert loaded.predictor is None
    assert "ValueError: cannot tell the task of a model with architectures 'BertForMaskedLM'" in loaded.error
    # The config names a classifier but the weights are gone: the classification page, answering with the reason.
    broken = tmp_path / "broken-classifier"
    shutil.copytree(classifier_dir, broken)
    (broken / "model.safetensors").unlink()
    banner, (value, status) = banner_and_status(app.build_demo(str(broken)), "/classify", SPORTS)
    assert banner["value"].startswith(f"**The model `{broken}` could not be loaded.**")
    assert not value and status == banner["value"]  # no probabilities ({}: gr.Label's empty value)


def test_the_dtype_space_variable_sets_the_weights_type(app, ner_model_dir, monkeypatch):
    monkeypatch.setenv("DTYPE", "bfloat16")
    loaded = app.load_model(str(ner_model_dir))
    assert loaded.error is None and loaded.predictor.model.encoder.dtype == torch.bfloat16
    assert loaded.predictor.model.crf.transitions.dtype == torch.float32
    assert isinstance(loaded.predictor(ENGLISH), list)
    monkeypatch.setenv("DTYPE", "int8")
    refused = app.load_model(str(ner_model_dir))
    assert refused.predictor is None and "ValueError: dtype must be one of float32, bfloat16, float16" in refused.error


def test_the_space_shares_the_cores_among_its_concurrent_predictions(app, monkeypatch):
    from hf_bert_tasks.modeling.threads import usable_cores

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("THREADS", "1")
        assert app.space_threads() == 1 == torch.get_num_threads()
        monkeypatch.delenv("THREADS")
        assert app.space_threads() == max(1, usable_cores() // app.CONCURRENT_PREDICTIONS)
        for bad in ("0", "two"):
            monkeypatch.setenv("THREADS", bad)
            with pytest.raises(ValueError, match="THREADS must be a whole number of at least 1"):
                app.space_threads()
    finally:
        torch.set_num_threads(before)


def test_a_sentence_pair_model_gets_a_second_text_box(app, classifier_dir, tmp_path, monkeypatch):
    """A classifier whose config records `sentence_pairs` (as the recipe does for pair data): the page asks for both
    texts, `/classify` takes both, and the answer is TextClassifier's for the pair."""
    monkeypatch.delenv("MAX_INPUT_CHARS", raising=False)
    pairs = tmp_path / "pair-classifier"
    shutil.copytree(classifier_dir, pairs)
    config = json.loads((pairs / "config.json").read_text())
    (pairs / "config.json").write_text(json.dumps({**config, "sentence_pairs": True}))
    classifier = TextClassifier.from_pretrained(str(pairs))
    assert classifier.sentence_pairs and not TextClassifier.from_pretrained(str(classifier_dir)).sentence_pairs
    first, second = SPORTS, " ".join([POLITICS] * 3)
    expected = classifier(first, second)
    assert expected["probabilities"] != pytest.approx(classifier(first)["probabilities"])  # the pair is read
    demo = app.build_demo(str(pairs))
    assert {"cls-text", "cls-pair"} <= element_ids(demo)
    banner, (value, status) = banner_and_status(demo, "/classify", first, second)
    assert banner["visible"] is False
    assert {c["label"]: c["confidence"] for c in value["confidences"]} == pytest.approx(expected["probabilities"],
                                                                                        abs=1e-6)
    assert status.startswith(f"Label: {expected['label']} ({expected['score']:.2f}); "
                             f"{len(first):,} + {len(second):,} characters")
    assert app.classify_text(classifier, first, 1000, "  ") == (
        None, "Enter the second text of the pair (the box is empty).")
    assert "cls-pair" not in element_ids(app.build_demo(str(classifier_dir)))


def test_input_the_predictors_refuse_is_answered_in_the_status_line(app, ner_model_dir, classifier_dir,
                                                                     qa_model_dir):
    """The predictors' shared checks reach the page as a status line, never as an error: characters the tokenizer
    deletes (a classifier gives no prediction, QA refuses the question), a lone surrogate (JSON can carry one)."""
    from hf_bert_tasks.ner.predictor import NerPredictor
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    classifier = TextClassifier.from_pretrained(str(classifier_dir))
    assert app.classify_text(classifier, "\ufffd\ue000", 1000) == (
        None, "No prediction: the text has no token the model can read (only characters its tokenizer deletes, "
              "such as U+FFFD).")
    value, status = app.classify_text(classifier, "the team \ud800", 1000)
    assert value is None and status.startswith("text is not valid Unicode: a lone surrogate U+D800 at character 9")
    answerer = QuestionAnswerer.from_pretrained(qa_model_dir)
    assert app.answer_question(answerer, "\ufffd", "john visited paris .", 1000)[2].startswith("question 0 is empty")
    highlight, rows, status = app.tag_entities(NerPredictor.from_pretrained(str(ner_model_dir)), "\udc80 Paris", 1000)
    assert highlight is None and rows == [] and "not valid Unicode" in status


def test_bad_max_input_chars_is_named(app, monkeypatch):
    monkeypatch.setenv("MAX_INPUT_CHARS", "lots")
    with pytest.raises(ValueError, match="MAX_INPUT_CHARS='lots' is not an integer"):
        app.max_input_chars()
    monkeypatch.setenv("MAX_INPUT_CHARS", "0")
    with pytest.raises(ValueError, match="must be positive"):
        app.max_input_chars()
    monkeypatch.setenv("MAX_INPUT_CHARS", "5_000")
    assert app.max_input_chars() == 5000


# --- a real browser --------------------------------------------------------------------------------------------------
def test_browser_uses_each_kind_of_model(app_urls):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: pip install playwright")
    expect = sync_api.expect
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(20_000)

            # Named entities: type, submit, see the entities highlighted and in the table.
            page.goto(app_urls["ner"])
            page.locator("#ner-text textarea").fill(ENGLISH)
            page.locator("#ner-submit").click()
            status = page.locator("#ner-status")
            expect(status).to_contain_text("Found 5 entities")
            highlighted = page.locator("#ner-highlight .token.highlighted")
            expect(highlighted.locator(".text")).to_have_text(["John", "Paris", "Mary", "Anna", "London"])
            expect(highlighted.filter(has_text="Paris").locator(".label")).to_have_text(
                re.compile(r"^LOC (0\.\d\d|1\.00)$"))
            table = page.locator("#ner-table")
            expect(table.get_by_role("row").filter(has_text="Paris")).to_contain_text("LOC")
            # A clickable example fills the box and runs the model.
            page.locator("#ner-examples").get_by_text(CHINESE).click()
            expect(page.locator("#ner-text textarea")).to_have_value(CHINESE)
            expect(status).to_contain_text(f"in {len(CHINESE)} characters")
            expect(highlighted.locator(".text")).to_contain_text(["朱元璋"])
            expect(table.get_by_role("row").filter(has_text="朱元璋")).to_contain_text("PER")
            page.screenshot(path=str(ARTIFACTS / "demo-ner.png"), full_page=True)

            # Text classification: the label and every probability.
            page.goto(app_urls["classification"])
            expect(page.locator("body")).to_contain_text("Labels: sports, business, politics")
            page.locator("#cls-text textarea").fill(POLITICS)
            page.locator("#cls-submit").click()
            expect(page.locator("#cls-status")).to_contain_text(re.compile(r"Label: politics \((0\.\d\d|1\.00)\)"))
            label = page.locator("#cls-label")
            expect(label).to_contain_text("politics")
            for name in CLASSES:
                expect(label).to_contain_text(name)
            page.screenshot(path=str(ARTIFACTS / "demo-classification.png"), full_page=True)

            # Question answering: the answer, highlighted in its context with its score.
            page.goto(app_urls["qa"])
            page.locator("#qa-question textarea").fill("Where did John go?")
            page.locator("#qa-context textarea").fill(ENGLISH)
            page.locator("#qa-submit").click()
            expect(page.locator("#qa-status")).to_contain_text("Answer at characters 13-18")
            answer = page.locator("#qa-highlight .token.highlighted")
            expect(answer.locator(".text")).to_have_text(["Paris"])
            expect(answer.locator(".label")).to_have_text(re.compile(r"^answer (0\.\d\d|1\.00)$"))
            expect(page.locator("#qa-answer textarea")).to_have_value("Paris")
            page.screenshot(path=str(ARTIFACTS / "demo-qa.png"), full_page=True)
        finally:
            browser.close()
    for task in ("ner", "classification", "qa"):
        assert (ARTIFACTS / f"demo-{task}.png").stat().st_size > 10_000
