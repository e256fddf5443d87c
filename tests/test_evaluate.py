"""evaluate's evaluators on this project's models: `evaluate.evaluator("token-classification")` over the CRF model's
pipeline gets the NER recipe's own strict dev scores, `evaluator("text-classification")` over a classifier's
pipeline the classification recipe's accuracy. The Hub's metric scripts cannot be loaded offline: local modules
(tests/fixtures/strict_seqeval, tests/fixtures/accuracy_metric) stand in, loaded by path.

evaluate 0.4.6 reads `transformers.TFPreTrainedModel`, which transformers 5 removed: the `evaluator_ready` fixture
stands in for that one attribute (docs/testing.md). The question-answering evaluator does not fit: it builds
`pipeline("question-answering")`, a task transformers 5 removed (the QA recipe scores with its own SQuAD metric).
"""

import json
import subprocess
import sys

import pytest

from conftest import PYTHON, ROOT
from hf_bert_tasks.modeling.tagging import split_words

FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "hf_bert_tasks" / "sample_data"


@pytest.fixture
def evaluator_ready(monkeypatch):
    """`transformers.TFPreTrainedModel` for evaluate 0.4.6 (an isinstance check against it, never true here)."""
    monkeypatch.setattr(sys.modules["transformers"], "TFPreTrainedModel", type("TFPreTrainedModel", (), {}),
                        raising=False)


def run_recipe(recipe: str, *args) -> None:
    command = [PYTHON, str(ROOT / "recipes" / recipe), *map(str, args), "--do_train", "--do_eval", "--use_cpu",
               "--save_strategy", "no", "--report_to", "none", "--seed", "1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                                 "TOKENIZERS_PARALLELISM": "false", "HOME": str(ROOT), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]


def whole_word_sentences(path, out) -> int:
    """Write the sentences of a CoNLL file whose every token is one word to the pipeline (`split_words` of the
    tokens joined by spaces gives them back: no "2016-06-27", which the pipeline reads as five words), as the
    evaluator joins them. Returns how many were kept."""
    sentences = [block for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()
                 and not block.startswith("-DOCSTART-")]
    kept = []
    for block in sentences:
        tokens = [line.split()[0] for line in block.splitlines()]
        if [word for word, _, _ in split_words(" ".join(tokens))] == tokens:
            kept.append(block)
    out.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return len(kept)


def test_token_classification_evaluator_gets_the_recipes_strict_f1(evaluator_ready, tiny_encoder_dir, tmp_path):
    import evaluate
    from transformers import pipeline

    from hf_bert_tasks.ner.data import load_ner_dataset

    dev = tmp_path / "dev.conll"
    assert whole_word_sentences(SAMPLE / "en_dev.conll", dev) > 50
    run_recipe("ner.py", "--model_name_or_path", tiny_encoder_dir, "--train_file", SAMPLE / "en_train.conll",
               "--validation_file", dev, "--num_train_epochs", 8, "--learning_rate", 5e-3,
               "--output_dir", tmp_path / "ner")
    results = json.loads((tmp_path / "ner" / "all_results.json").read_text())
    assert results["eval_f1"] > 0.3  # a model that finds entities, so that the comparison means something

    data = load_ner_dataset(validation_file=str(dev))["validation"]
    tagger = pipeline("token-classification", model=str(tmp_path / "ner"), trust_remote_code=True)
    scores = evaluate.evaluator("token-classification").compute(
        tagger, data=data, metric=evaluate.load(str(FIXTURES / "strict_seqeval")), input_column="tokens",
        label_column="ner_tags")
    assert scores["overall_f1"] == pytest.approx(results["eval_f1"], abs=1e-12)
    assert scores["overall_precision"] == pytest.approx(results["eval_precision"], abs=1e-12)
    assert scores["overall_recall"] == pytest.approx(results["eval_recall"], abs=1e-12)
    assert scores["PER"]["f1"] == pytest.approx(results["eval_PER_f1"], abs=1e-12)


def test_text_classification_evaluator_gets_the_recipes_accuracy(evaluator_ready, tiny_encoder_dir, tmp_path):
    import evaluate
    from transformers import pipeline

    from hf_bert_tasks.classification.data import load_classification_dataset

    run_recipe("classify.py", "--model_name_or_path", tiny_encoder_dir, "--train_file",
               FIXTURES / "classify_news_train.txt", "--validation_file", FIXTURES / "classify_news_dev.txt",
               "--num_train_epochs", 4, "--learning_rate", 5e-3, "--output_dir", tmp_path / "classifier")
    results = json.loads((tmp_path / "classifier" / "all_results.json").read_text())
    data = load_classification_dataset(validation_file=FIXTURES / "classify_news_dev.txt")["validation"]
    names = data.features["label"].names
    classifier = pipeline("text-classification", model=str(tmp_path / "classifier"))
    scores = evaluate.evaluator("text-classification").compute(
        classifier, data=data, metric=evaluate.load(str(FIXTURES / "accuracy_metric")), input_column="text",
        label_column="label", label_mapping={name: i for i, name in enumerate(names)})
    assert 1 / len(names) < results["eval_accuracy"] < 1  # better than chance, and some mistakes to agree on
    assert scores["accuracy"] == pytest.approx(results["eval_accuracy"], abs=1e-12)
