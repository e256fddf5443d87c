"""Tag schemes, span extraction, label alignment and the raw-text pre-tokenizer (``split_words``).

The code lives in ``hf_bert_tasks/modeling/tagging.py`` (its docstring documents the schemes and the repair rule):
it ships next to the weights of every CRF model, because the custom pipeline (``modeling/pipeline_bert_crf.py``)
splits raw text into words and reads entities exactly as training and ``NerPredictor`` do. Edit it there; this module
re-exports its public names so that ``hf_bert_tasks.ner.tagging`` keeps working.
"""

from ..modeling import tagging as _tagging
from ..modeling.tagging import *  # noqa: F403  (the public names, listed in its __all__)
from ..modeling.tagging import STRATEGIES

__all__ = list(_tagging.__all__) + ["STRATEGIES"]
