"""The demo Space (`spaces/app.py`) run for real: a server on 127.0.0.1, called with `gradio_client` and driven in
headless Chromium.

The model is the tiny random BERT of conftest with a CRF head, trained here for about a second on a handful of
sentences until it tags the names in them (fixed seed, one thread: the same weights every run). The app is started
the way a Space starts it (`python spaces/app.py`, model and port from the environment); the model-cannot-load case
uses `build_demo` in this process. The browser test needs Debian's chromium at /usr/bin/chromium and the
`playwright` package (not `playwright install`); it is skipped, saying which is missing, without them.
"""

import importlib.util
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
from gradio_client import Client  # noqa: E402

from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification  # noqa: E402
from hf_bert_tasks.ner.inputs import WindowCollator, encode_words  # noqa: E402
from hf_bert_tasks.ner.predictor import NerPredictor  # noqa: E402

# gradio's queue calls pandas 3 with options it deprecates; nothing this project can change.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:gradio\.queueing")

APP = ROOT / "spaces" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "tests" / "artifacts" / "demo.png"
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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same sums in the same order, the same weights every run
    try:
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
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(120):
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
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
def app_url(ner_model_dir, tmp_path_factory):
    """`python spaces/app.py` serving the fixture model, as a Space runs it (model and address from the env)."""
    port = free_port()
    env = {**os.environ, **APP_ENV, "MODEL_ID": str(ner_model_dir), "HOST": "127.0.0.1", "PORT": str(port)}
    env.pop("MAX_INPUT_CHARS", None)  # the default limit is what the tests expect
    log = tmp_path_factory.mktemp("demo-log") / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen([PYTHON, str(APP)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/config", process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    assert status.startswith("The text is 100,002 characters long; this demo tags at most 20,000.")
    # One character under the limit is tagged.
    assert tag(client, "Paris".ljust(20_000))[2].startswith("Found 1 entity in 20,000 characters")


@pytest.fixture(scope="module")
def app():
    """spaces/app.py imported as a module (it is a script in a folder, not part of the package)."""
    spec = importlib.util.spec_from_file_location("demo_space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_that_cannot_load_leaves_the_app_up_with_a_message(app, tmp_path, monkeypatch):
    monkeypatch.delenv("MAX_INPUT_CHARS", raising=False)
    missing = tmp_path / "no-such-model"
    demo = app.build_demo(str(missing))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/config")
        config = Client(url, verbose=False, download_files=False, analytics_enabled=False).config
        banner = next(c["props"] for c in config["components"] if c["props"].get("elem_id") == "ner-model-error")
        assert banner["visible"] is True
        assert banner["value"].startswith(
            f"**The NER model `{missing}` could not be loaded.** FileNotFoundError: there is no folder {missing}")
        highlight, rows, status = tag(Client(url, verbose=False, download_files=False), ENGLISH)
        assert highlight is None and rows == []
        assert status == banner["value"]
    finally:
        demo.close()


def test_task_tab_appears_only_when_its_model_is_configured(app, ner_model_dir, monkeypatch):
    built = []

    def build_tab(model_id):
        built.append(model_id)
        app.gr.Markdown(f"classifier {model_id}")

    monkeypatch.setattr(app, "TASK_TABS", {"CLASSIFIER_ID": ("Text classification", build_tab)})

    def tab_labels(demo):
        return [c["props"]["label"] for c in demo.config["components"] if c["type"] == "tabitem"]

    monkeypatch.delenv("CLASSIFIER_ID", raising=False)
    assert tab_labels(app.build_demo(str(ner_model_dir))) == ["Named entities"]
    assert built == []
    monkeypatch.setenv("CLASSIFIER_ID", "some/classifier")
    assert tab_labels(app.build_demo(str(ner_model_dir))) == ["Named entities", "Text classification"]
    assert built == ["some/classifier"]


def test_bad_max_input_chars_is_named(app, monkeypatch):
    monkeypatch.setenv("MAX_INPUT_CHARS", "lots")
    with pytest.raises(ValueError, match="MAX_INPUT_CHARS='lots' is not an integer"):
        app.max_input_chars()
    monkeypatch.setenv("MAX_INPUT_CHARS", "0")
    with pytest.raises(ValueError, match="must be positive"):
        app.max_input_chars()
    monkeypatch.setenv("MAX_INPUT_CHARS", "5_000")
    assert app.max_input_chars() == 5000


def test_browser_types_submits_and_sees_entities(app_url):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(app_url)
            page.locator("#ner-text textarea").fill(ENGLISH)
            page.locator("#ner-submit").click()
            status = page.locator("#ner-status")
            sync_api.expect(status).to_contain_text("Found 5 entities")
            highlighted = page.locator("#ner-highlight .token.highlighted")
            sync_api.expect(highlighted.locator(".text")).to_have_text(["John", "Paris", "Mary", "Anna", "London"])
            sync_api.expect(highlighted.filter(has_text="Paris").locator(".label")).to_have_text(
                re.compile(r"^LOC (0\.\d\d|1\.00)$"))
            table = page.locator("#ner-table")
            sync_api.expect(table.get_by_role("row").filter(has_text="Paris")).to_contain_text("LOC")

            # A clickable example fills the box and runs the model.
            page.locator("#ner-examples").get_by_text(CHINESE).click()
            sync_api.expect(page.locator("#ner-text textarea")).to_have_value(CHINESE)
            sync_api.expect(status).to_contain_text(f"in {len(CHINESE)} characters")
            sync_api.expect(highlighted.locator(".text")).to_contain_text(["朱元璋"])
            sync_api.expect(table.get_by_role("row").filter(has_text="朱元璋")).to_contain_text("PER")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
