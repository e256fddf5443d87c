"""Extractive question answering (the classic ``run_squad.py`` role) around transformers' own
``AutoModelForQuestionAnswering`` (a start and an end logit per token): SQuAD-style readers (``data``), question +
context windows (``inputs``), SQuAD and CMRC2018 scores (``metrics``), the exact n-best search and raw questions to
answers (``predictor``)."""
