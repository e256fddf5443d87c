"""Windows of whole words over text longer than the model's window, shared by NER inputs and MLM pretraining.

The code lives in ``hf_bert_tasks/modeling/windows.py``: it ships next to the weights of every CRF model, because the
custom pipeline (``modeling/pipeline_bert_crf.py``) cuts long text into the same windows as training did. This module
keeps the name importable for the tasks that use it (``pretraining.inputs``).
"""

from .modeling.windows import plan_windows

__all__ = ["plan_windows"]
