"""NER inputs: words to windows of model inputs (`encode_words`, `WindowCollator`) and predictions back to words
(`merge_windows`).

The code lives in ``hf_bert_tasks/modeling/windows.py`` (the rules of windowing and merging are in its docstring): it
ships next to the weights of every CRF model, so that the custom pipeline (``modeling/pipeline_bert_crf.py``),
``NerPredictor`` and training all cut and merge windows with one implementation.
"""

from ..modeling.windows import WindowCollator, encode_words, merge_windows, plan_windows

__all__ = ["WindowCollator", "encode_words", "merge_windows", "plan_windows"]
