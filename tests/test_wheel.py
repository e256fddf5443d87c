"""The package as a wheel: `pip install .` outside the checkout must publish models with their cards.

The wheel is built offline from a copy of the sources (`pip wheel --no-deps --no-build-isolation`), installed into a
fresh virtual environment that borrows this environment's dependencies through a `.pth` line (nothing is downloaded),
and run from a folder outside the checkout, where only the installed copy of `hf_bert_tasks` can be imported.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, tiny_bert_config, tiny_tokenizer
from hub_server import HubServer

TOKEN = "hf_loopback_alice"
SOURCES = ("hf_bert_tasks", "model_cards", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([PYTHON, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("hf_bert_tasks-*.whl")
    return path


def test_the_wheel_ships_the_card_templates_and_every_folder_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted(p.name for p in (ROOT / "model_cards").glob("*.md"))
    assert {"ner.md", "classification.md", "qa.md"} <= set(templates)
    with zipfile.ZipFile(wheel) as archive:
        for name in templates:  # byte for byte the editable source in model_cards/
            assert archive.read(f"hf_bert_tasks/model_cards/{name}") == (ROOT / "model_cards" / name).read_bytes()
    # pyproject.toml lists the packages by hand (it maps hf_bert_tasks.model_cards onto model_cards/): a folder of
    # the package missing from that list would be missing from the wheel.
    for folder in (ROOT / "hf_bert_tasks").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            for file in folder.iterdir():
                if file.is_file() and file.suffix != ".pyc":
                    assert file.relative_to(ROOT).as_posix() in names, f"{file.relative_to(ROOT)} is not in the wheel"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; the dependencies come from this environment."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run([PYTHON, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                             str(wheel)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run_outside(python: Path, args, cwd: Path, env: dict):
    return subprocess.run([str(python), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def save_tiny_model(path: Path):
    import torch

    from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification

    labels = ["O", "B-PER", "I-PER"]
    torch.manual_seed(0)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    BertCrfForTokenClassification(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    (path / "all_results.json").write_text(json.dumps({"eval_f1": 0.5, "eval_precision": 0.5, "eval_recall": 0.5}))


def test_installed_wheel_pushes_a_model_with_its_card_from_outside_the_checkout(installed, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    save_tiny_model(tmp_path / "model")
    server = HubServer(tmp_path / "hub", tokens={TOKEN: "alice"}).start()
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_ENDPOINT": server.url, "HF_TOKEN": TOKEN,
               "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        where = run_outside(installed, ["-c", "import hf_bert_tasks.hub as h; print(h.__file__); print(h.MODEL_CARDS)"],
                            outside, env)
        assert where.returncode == 0, where.stderr[-2000:]
        module, cards = where.stdout.split()
        assert not Path(module).is_relative_to(ROOT) and Path(cards) == Path(module).parent / "model_cards"
        result = run_outside(installed, ["-m", "hf_bert_tasks.hub", "push-model", tmp_path / "model", "alice/wheel-ner",
                                         "--language", "en"], outside, env)
        assert result.returncode == 0, result.stderr[-3000:]
        repo = server.store.repo("model", "alice/wheel-ner")
        assert repo["refs"]["main"] == result.stdout.strip().splitlines()[-1]
        with urllib.request.urlopen(f"{server.url}/alice/wheel-ner/resolve/main/README.md") as response:
            readme = response.read().decode("utf-8")
        assert "## Usage" in readme and 'pipeline("token-classification", model="alice/wheel-ner"' in readme
    finally:
        server.stop()


@pytest.mark.slow
def test_installed_wheel_runs_a_recipe_with_push_to_hub(installed, tiny_encoder_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    server = HubServer(tmp_path / "hub", tokens={TOKEN: "alice"}).start()
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_ENDPOINT": server.url,
               "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
        sample = ROOT / "hf_bert_tasks" / "sample_data"
        result = run_outside(installed, [
            ROOT / "recipes" / "ner.py", "--model_name_or_path", tiny_encoder_dir, "--train_file",
            sample / "en_train.conll", "--validation_file", sample / "en_dev.conll", "--max_train_samples", "16",
            "--max_eval_samples", "8", "--num_train_epochs", "1", "--do_train", "--do_eval", "--output_dir",
            tmp_path / "out", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--push_to_hub",
            "--hub_model_id", "alice/wheel-recipe", "--hub_token", TOKEN], outside, env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "main" in server.store.repo("model", "alice/wheel-recipe")["refs"]
    finally:
        server.stop()
