"""hf_bert_tasks: the classic BERT fine-tuning workflows (NER with a CRF, classification, QA) on the Hugging Face stack.

Importing the package registers the CRF model with the Auto classes in this process (`AutoConfig`, `AutoModel`,
`AutoModelForTokenClassification`) and marks it for custom-code saving, so `save_pretrained` writes a folder that
loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

from .modeling.configuration_bert_crf import BertCrfConfig
from .modeling.crf import LinearChainCRF
from .modeling.modeling_bert_crf import BertCrfForTokenClassification
from .modeling.schemes import allowed_transitions

AutoConfig.register(BertCrfConfig.model_type, BertCrfConfig)
AutoModel.register(BertCrfConfig, BertCrfForTokenClassification)
AutoModelForTokenClassification.register(BertCrfConfig, BertCrfForTokenClassification)
BertCrfConfig.register_for_auto_class()
BertCrfForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")

__version__ = "0.1.0"

__all__ = ["BertCrfConfig", "BertCrfForTokenClassification", "LinearChainCRF", "allowed_transitions"]
