"""hf_bert_tasks: the classic BERT fine-tuning workflows (NER with a CRF, classification, QA) on the Hugging Face stack.

Start-up: ``import hf_bert_tasks`` imports nothing but this file, so ``python -m hf_bert_tasks.<command> --help``
answers without loading torch, transformers or datasets. Each module imports what it needs itself (a command line
builds its parser before its heavy imports), and the public names below are resolved on first use (PEP 562 module
``__getattr__``): ``from hf_bert_tasks import BertCrfForTokenClassification`` imports the model then.

Registration: ``hf_bert_tasks.modeling.register_auto_classes()`` registers the CRF model with the Auto classes in this
process (``AutoConfig``, ``AutoModel``, ``AutoModelForTokenClassification``) and marks it for custom-code saving, so
``save_pretrained`` writes a folder that loads with ``trust_remote_code=True`` where this package is not installed. It
runs on first access of ``BertCrfConfig`` or ``BertCrfForTokenClassification`` here, and in every loader of this
package that reads a CRF folder (``NerPredictor``, the predictor command line, export, vocabulary expansion,
distillation). A bare ``import hf_bert_tasks`` does not register: that needs torch and transformers' model code
(seconds), which every ``--help`` would then pay. Code that loads a CRF folder through the Auto classes without
touching these names calls ``register_auto_classes()`` first.
"""

import importlib

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY_NAMES = {
    "BertCrfConfig": ".modeling.configuration_bert_crf",
    "BertCrfForTokenClassification": ".modeling.modeling_bert_crf",
    "BertGlobalPointerConfig": ".modeling.configuration_bert_global_pointer",
    "BertGlobalPointerForSpanClassification": ".modeling.modeling_bert_global_pointer",
    "LinearChainCRF": ".modeling.crf",
    "allowed_transitions": ".modeling.schemes",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name: str):
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in ("BertCrfConfig", "BertCrfForTokenClassification", "BertGlobalPointerConfig",
                "BertGlobalPointerForSpanClassification"):
        from .modeling import register_auto_classes

        register_auto_classes()
    value = getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))
