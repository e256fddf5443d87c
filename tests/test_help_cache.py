"""hf_bert_tasks/help_cache.py: a recipe's `--help` is rendered once, then read from the cache without importing
transformers or torch; any change to what the text depends on renders it again; an unwritable cache costs only time."""

import json
import os
import shutil
import subprocess


from conftest import PYTHON, ROOT
from hf_bert_tasks.help_cache import asks_for_help

# Runs a script with --help and prints sys.modules to stderr at exit (the help exits through SystemExit).
PROBE = """import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def recipe_help(script, hf_home) -> tuple[str, set[str]]:
    """The help a script prints with HF_HOME at `hf_home`, and the modules it imported."""
    env = {**os.environ, "HF_HOME": str(hf_home), "COLUMNS": "100"}
    done = subprocess.run([PYTHON, "-c", PROBE, str(script), "--help"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    listing = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return done.stdout, set(json.loads(listing[-1].removeprefix("MODULES ")))


def test_help_flags_are_found_where_argparse_would_act_on_them():
    assert asks_for_help(["--help"]) and asks_for_help(["-h"])
    assert asks_for_help(["--output_dir", "out", "-h"])
    assert not asks_for_help([])
    assert not asks_for_help(["--helpful", "x"])
    assert not asks_for_help(["--output_dir", "out", "--", "-h"])  # after `--`, a positional value


def test_a_recipes_help_is_read_from_the_cache_the_second_time(tmp_path):
    live, live_modules = recipe_help(ROOT / "recipes" / "ner.py", tmp_path)
    assert live.startswith("usage: ner.py") and "--per_device_train_batch_size" in live
    assert "transformers" in live_modules
    assert len(list((tmp_path / "hf_bert_tasks" / "help").glob("ner-*.txt"))) == 1
    cached, cached_modules = recipe_help(ROOT / "recipes" / "ner.py", tmp_path)
    assert cached == live
    heavy = sorted(m for m in cached_modules if m.split(".")[0] in ("torch", "transformers", "datasets", "numpy"))
    assert heavy == []


def test_a_changed_recipe_renders_its_help_again(tmp_path):
    script = tmp_path / "ner.py"
    shutil.copy(ROOT / "recipes" / "ner.py", script)
    before, _ = recipe_help(script, tmp_path / "home")
    source = script.read_text(encoding="utf-8")
    assert "Encoder (Hub id or folder)" in source
    script.write_text(source.replace("Encoder (Hub id or folder)", "Encoder named by a Hub id or a folder"),
                      encoding="utf-8")
    after, modules = recipe_help(script, tmp_path / "home")
    assert "transformers" in modules  # rendered, not read
    assert "Encoder named by a Hub id or a folder" in " ".join(after.split())
    assert "Encoder (Hub id or folder)" in " ".join(before.split())


def test_an_unwritable_cache_still_prints_the_help(tmp_path):
    not_a_folder = tmp_path / "home"
    not_a_folder.write_text("a file where the cache folder would go", encoding="utf-8")
    text, _ = recipe_help(ROOT / "recipes" / "pretrain.py", not_a_folder)
    assert text.startswith("usage: pretrain.py") and "--mlm_probability" in text
    assert not_a_folder.read_text(encoding="utf-8") == "a file where the cache folder would go"
