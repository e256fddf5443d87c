"""Start-up stays light: `import hf_bert_tasks` and every command line's `--help` import none of the heavy libraries
(torch, transformers, datasets, the Trainer, ...), and the public names still resolve, registering the CRF model when
they do. Each check runs a fresh interpreter and lists its sys.modules at exit, since this test process has long
imported everything. Times are measured in `benchmarks/startup.py`, not asserted here."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

# Libraries whose import costs from a few tenths of a second (numpy-based ones) to seconds (torch, transformers).
HEAVY = ("torch", "transformers", "datasets", "evaluate", "peft", "accelerate", "gradio", "onnx", "onnxruntime",
         "seqeval", "sklearn", "scipy", "pandas", "matplotlib", "jieba")
COMMANDS = ("hf_bert_tasks.predictor", "hf_bert_tasks.export", "hf_bert_tasks.hub", "hf_bert_tasks.vocab")


# Runs ARGUMENTS' code, then prints sys.modules to stderr at exit (argparse's --help exits through SystemExit).
PROBE = """import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
if sys.argv[1] == "-c":
    exec(sys.argv[2])
else:
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def imported_modules(*arguments: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules in sys.modules at the end of a fresh `python -c CODE` or `python -m MODULE ARGS...` (the
    arguments), and the finished process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    listing = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return set(json.loads(listing[-1].removeprefix("MODULES "))) if listing else set(), done


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_module_listing_sees_heavy_imports():
    """The checker itself: a module known to import torch and the Trainer is caught."""
    modules, done = imported_modules("-c", "import hf_bert_tasks.recipe")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"torch", "transformers.trainer", "hf_bert_tasks.recipe"} <= modules


def test_package_import_loads_only_the_standard_library():
    baseline, _ = imported_modules("-c", "pass")
    modules, done = imported_modules("-c", "import hf_bert_tasks")
    assert done.returncode == 0, done.stderr[-2000:]
    added = modules - baseline
    assert "hf_bert_tasks" in added
    assert sorted(m for m in added if m.split(".")[0] not in sys.stdlib_module_names | {"hf_bert_tasks"}) == []
    assert {"transformers", "transformers.trainer", "transformers.modeling_utils", "datasets", "torch"}.isdisjoint(
        modules)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_line_help_loads_no_heavy_library(command):
    modules, done = imported_modules("-m", command, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: ")
    assert heavy(modules) == [], f"`python -m {command} --help` imports {heavy(modules)[:10]}"


def test_lazy_names_resolve_and_register_the_crf_model():
    """`from hf_bert_tasks import ...` gives the model's own classes and registers them with the Auto classes (what
    loading a saved CRF folder through `AutoModelForTokenClassification` needs); unknown names still fail."""
    script = """
import hf_bert_tasks
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING, MODEL_MAPPING
assert "bert_crf" not in CONFIG_MAPPING  # a bare `import hf_bert_tasks` registers nothing
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification, LinearChainCRF, allowed_transitions
from hf_bert_tasks.modeling import crf, modeling_bert_crf, schemes
assert BertCrfForTokenClassification is modeling_bert_crf.BertCrfForTokenClassification
assert LinearChainCRF is crf.LinearChainCRF and allowed_transitions is schemes.allowed_transitions
assert type(AutoConfig.for_model("bert_crf")) is BertCrfConfig
assert MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[BertCrfConfig] is BertCrfForTokenClassification
assert MODEL_MAPPING[BertCrfConfig] is BertCrfForTokenClassification
assert BertCrfForTokenClassification._auto_class == "AutoModelForTokenClassification"
assert sorted(hf_bert_tasks.__all__) == sorted(["BertCrfConfig", "BertCrfForTokenClassification", "LinearChainCRF",
                                                "allowed_transitions", "BertGlobalPointerConfig",
                                                "BertGlobalPointerForSpanClassification"])
from hf_bert_tasks import BertGlobalPointerConfig, BertGlobalPointerForSpanClassification
assert MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[BertGlobalPointerConfig] is BertGlobalPointerForSpanClassification
assert set(hf_bert_tasks.__all__) <= set(dir(hf_bert_tasks))
try:
    hf_bert_tasks.NoSuchName
except AttributeError as error:
    assert "NoSuchName" in str(error)
else:
    raise AssertionError("hf_bert_tasks.NoSuchName resolved")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
