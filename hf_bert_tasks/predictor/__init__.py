"""Predicting with any model the recipes train.

- ``python -m hf_bert_tasks.predictor MODEL TEXT [TEXT ...]`` (and ``accelerate launch -m hf_bert_tasks.predictor``):
  the command line, in ``__main__.py``, so that the file which is the command line is named as one.
- ``auto.py``: which task a model does (:func:`~hf_bert_tasks.predictor.auto.task_of`, read from its config) and that
  task's predictor class, the rule shared by the command line and the demo Space.

The predictors themselves are each task's ``predictor.py`` (``ner``, ``classification``, ``qa``). This file holds
only this docstring, so that ``python -m`` does not import anything twice.
"""
