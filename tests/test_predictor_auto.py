"""hf_bert_tasks/predictor/auto.py: each predictor loads its model through `load_model`, which names the kind of model
a folder holds and the predictor that loads it, and what is wrong with a damaged weights file or a config that
disagrees with its weights."""

import json
import shutil

import pytest
import torch

from conftest import tiny_bert_config, tiny_tokenizer
from tiny_models import save_classifier, save_qa_model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification

    root = tmp_path_factory.mktemp("kinds")
    labels = ["O", "B-PER", "I-PER"]
    torch.manual_seed(0)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(labels)),
                           label2id={label: i for i, label in enumerate(labels)})
    BertCrfForTokenClassification(config).save_pretrained(root / "ner")
    tiny_tokenizer().save_pretrained(root / "ner")
    return {"ner": root / "ner", "classification": save_classifier(root / "classification"),
            "qa": save_qa_model(root / "qa")}


def test_each_predictor_names_the_kind_of_model_a_folder_holds_and_its_predictor(folders):
    from hf_bert_tasks.classification.predictor import TextClassifier
    from hf_bert_tasks.ner.predictor import NerPredictor
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    cases = [(NerPredictor, "classification", "a sequence classifier (BertForSequenceClassification), not a token "
                                              "classifier (NER): load it with TextClassifier.from_pretrained"),
             (TextClassifier, "qa", "a question-answering model (BertForQuestionAnswering), not a sequence "
                                    "classifier: load it with QuestionAnswerer.from_pretrained"),
             (QuestionAnswerer, "ner", "a token classifier (NER) (BertCrfForTokenClassification), not a "
                                       "question-answering model: load it with NerPredictor.from_pretrained")]
    for predictor, held, message in cases:
        with pytest.raises(ValueError) as error:
            predictor.from_pretrained(folders[held])
        assert str(error.value) == f"{folders[held]} holds {message} (python -m hf_bert_tasks.predictor picks the " \
                                   "predictor by itself)"
    for predictor, task in ((NerPredictor, "ner"), (TextClassifier, "classification"), (QuestionAnswerer, "qa")):
        predictor.from_pretrained(folders[task])  # its own kind loads


def test_a_weights_file_cut_short_is_named(folders, tmp_path):
    from hf_bert_tasks.classification.predictor import TextClassifier

    folder = shutil.copytree(folders["classification"], tmp_path / "cut")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"{weights} cannot be read \\(Error while deserializing header: .*\\): "
                                         "the file is damaged or cut short"):
        TextClassifier.from_pretrained(folder)


def test_a_config_whose_labels_disagree_with_the_weights_is_named(folders, tmp_path):
    from hf_bert_tasks.classification.predictor import TextClassifier

    folder = shutil.copytree(folders["classification"], tmp_path / "two-labels")
    config = json.loads((folder / "config.json").read_text())
    config.update(id2label={"0": "sports", "1": "business"}, label2id={"sports": 0, "business": 1})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        TextClassifier.from_pretrained(folder)
    message = str(error.value)
    assert message.startswith(f"{folder / 'config.json'} does not describe the weights beside it (2 labels: "
                              "sports, business): classifier.")
    assert "classifier.weight is (3, 32) in model.safetensors, (2, 32) by config.json" in message
    assert "classifier.bias is (3,) in model.safetensors, (2,) by config.json" in message


@pytest.mark.parametrize("dtype", ["bfloat16", torch.bfloat16])
def test_each_predictor_loads_its_model_in_bfloat16_and_scores_in_float32(folders, dtype):
    """The weights in bf16 (issue 26); the CRF's scores stay float32; probabilities come out of a float softmax and
    stay close to fp32's."""
    from hf_bert_tasks.classification.predictor import TextClassifier
    from hf_bert_tasks.ner.predictor import NerPredictor
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    tagger = NerPredictor.from_pretrained(folders["ner"], dtype=dtype)
    assert tagger.model.encoder.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert tagger.model.crf.transitions.dtype == torch.float32 and tagger.model.crf.start_allowed.dtype == torch.bool
    entities = tagger(["john smith visited paris", "mary met the president"])
    assert len(entities) == 2 and all(0.0 < e["score"] <= 1.0 for found in entities for e in found)

    full = TextClassifier.from_pretrained(folders["classification"])
    half = TextClassifier.from_pretrained(folders["classification"], dtype=dtype)
    assert half.model.dtype == torch.bfloat16
    texts = ["the bank said", "john visited paris on monday"]
    for a, b in zip(full(texts), half(texts)):
        assert set(a["probabilities"]) == set(b["probabilities"])
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 0.05 for k in a["probabilities"])

    answerer = QuestionAnswerer.from_pretrained(folders["qa"], dtype=dtype)
    assert answerer.model.dtype == torch.bfloat16
    context = "john smith visited paris on monday ."
    answer = answerer("who visited paris ?", context)
    assert answer["answer"] == context[answer["start"]:answer["end"]] and 0.0 <= answer["score"] <= 1.0


def test_an_unknown_dtype_is_named():
    from hf_bert_tasks.predictor.auto import load_model

    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16 .*got 'int8'"):
        load_model("ner", "any-folder", dtype="int8")
