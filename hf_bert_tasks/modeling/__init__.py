"""The custom-code model: what ``save_pretrained`` copies next to the weights.

Every file here imports only torch, transformers, numpy (which transformers requires), the standard library and its
siblings (``from .crf import ...``), so a saved folder loads with ``trust_remote_code=True`` on a machine without
this package.
"""

import functools


@functools.cache
def register_auto_classes() -> None:
    """Register the CRF model and the global pointer model with the Auto classes in this process (``AutoConfig``,
    ``AutoModel``, ``AutoModelForTokenClassification``), so a saved folder of either loads as this package's classes,
    with or without ``trust_remote_code``, and mark them for custom-code saving, so ``save_pretrained`` copies the
    files of this folder and writes ``auto_map``. Runs once per process.

    It lives here, not in the copied files: a folder's own code, loaded as remote code, must not register itself in
    the user's process. ``hf_bert_tasks.BertCrfConfig`` / ``BertCrfForTokenClassification`` call it on first access,
    and so does every loader of this package that reads a CRF folder through the Auto classes.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

    from .configuration_bert_crf import BertCrfConfig
    from .configuration_bert_global_pointer import BertGlobalPointerConfig
    from .modeling_bert_crf import BertCrfForTokenClassification
    from .modeling_bert_global_pointer import BertGlobalPointerForSpanClassification

    for config_class, model_class in ((BertCrfConfig, BertCrfForTokenClassification),
                                      (BertGlobalPointerConfig, BertGlobalPointerForSpanClassification)):
        AutoConfig.register(config_class.model_type, config_class)
        AutoModel.register(config_class, model_class)
        AutoModelForTokenClassification.register(config_class, model_class)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForTokenClassification")
