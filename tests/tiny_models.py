"""Tiny trained models of the three tasks for the Space tests (tests/test_demo.py, tests/test_hub.py): the tiny
random BERT of conftest with a transformers head, trained here for a fraction of a second until it gets its handful of
examples right (fixed seed, one thread: the same weights every run), then saved with its tokenizer the way the
recipes save them (their long-text and window settings in config.json).
"""

from pathlib import Path

import torch
from conftest import tiny_bert_config, tiny_tokenizer

CLASSES = ["sports", "business", "politics"]
CLASSIFICATION = [
    ("the team won the cup final", "sports"),
    ("the club won the league", "sports"),
    ("olympic team from japan", "sports"),
    ("the bank said the company was new", "business"),
    ("ibm and google group company", "business"),
    ("reuters said the bank group", "business"),
    ("the president met the minister", "politics"),
    ("the minister told the president", "politics"),
    ("un president said", "politics"),
]
# Window-like texts too (sentences run together, cut anywhere), so that windows over a long text are in-domain.
CLASSIFICATION += [(f"{a}. {b}. {a}", label)
                   for (a, label), (b, other) in zip(CLASSIFICATION, CLASSIFICATION[1:]) if label == other]
# (question, context, answer): each answer occurs once in its context.
QUESTIONS = [
    ("who visited paris ?", "john visited paris on monday .", "john"),
    ("where did john go ?", "john visited paris on monday .", "paris"),
    ("who met anna ?", "mary met anna in london .", "mary"),
    ("where did mary meet anna ?", "mary met anna in london .", "london"),
    ("who told john ?", "anna weber told john in toronto .", "anna weber"),
    ("where was john told ?", "anna weber told john in toronto .", "toronto"),
    # A context of several windows, the answer in the last one.
    ("where did mary meet anna ?", "the president met the minister . " * 8 + "mary met anna in london .", "london"),
]


def train_briefly(model, batch: dict, steps: int, lr: float = 3e-3) -> None:
    """Adam on one batch, one thread, then eval mode: the same weights every run (for the tests' tiny models)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same sums in the same order, the same weights every run
    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def save_classifier(path: Path) -> Path:
    """A BertForSequenceClassification for CLASSES that reads long text in windows of 16 tokens (stride 4), as
    `recipes/classify.py --long_text windows --max_seq_length 16 --stride 4` records it."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_bert_config(num_labels=len(CLASSES), id2label=dict(enumerate(CLASSES)),
                              label2id={label: i for i, label in enumerate(CLASSES)})
    config.long_text, config.max_seq_length, config.stride = "windows", 16, 4
    model = BertForSequenceClassification(config)
    tokenizer = tiny_tokenizer()
    batch = tokenizer([text for text, _ in CLASSIFICATION], padding=True, return_tensors="pt")
    batch["labels"] = torch.tensor([CLASSES.index(label) for _, label in CLASSIFICATION])
    train_briefly(model, dict(batch), steps=80)
    with torch.no_grad():
        predicted = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(-1)
    assert predicted.tolist() == batch["labels"].tolist(), "the tiny classifier did not learn its examples"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_qa_model(path: Path) -> Path:
    """A BertForQuestionAnswering that answers QUESTIONS, with the windows `recipes/qa.py` would record for
    `--max_seq_length 48 --doc_stride 16` (so that a long context is read in several windows)."""
    from transformers import BertForQuestionAnswering

    from hf_bert_tasks.qa.inputs import prepare_train_features

    torch.manual_seed(0)
    config = tiny_bert_config()
    config.max_seq_length, config.doc_stride, config.max_question_length = 48, 16, 16
    model = BertForQuestionAnswering(config)
    tokenizer = tiny_tokenizer()
    examples = {"id": [str(i) for i in range(len(QUESTIONS))], "question": [q for q, _, _ in QUESTIONS],
                "context": [c for _, c, _ in QUESTIONS],
                "answers": [{"text": [a], "answer_start": [c.index(a)]} for _, c, a in QUESTIONS]}
    features = prepare_train_features(examples, tokenizer, max_seq_length=48, doc_stride=16, max_question_length=16)
    batch = tokenizer.pad({k: v for k, v in features.items() if k not in ("start_positions", "end_positions")},
                          return_tensors="pt")
    batch["start_positions"] = torch.tensor(features["start_positions"])
    batch["end_positions"] = torch.tensor(features["end_positions"])
    train_briefly(model, dict(batch), steps=150)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
