"""The encoder under every task head of the custom-code models (CRF, global pointer): copied with them, so it
imports only transformers."""

from transformers import AutoModel, PreTrainedModel


def build_encoder(config_or_path) -> PreTrainedModel:
    """The bare encoder (`AutoModel`) from a config or a pretrained path, without a pooler where the architecture
    has one: the pooler is unused here and its parameters would never get gradients (which DDP rejects)."""
    load = AutoModel.from_config if not isinstance(config_or_path, str) else AutoModel.from_pretrained
    try:
        return load(config_or_path, add_pooling_layer=False)
    except TypeError:  # DistilBERT and ELECTRA have no pooler and no such argument
        return load(config_or_path)


def run_encoder(encoder: PreTrainedModel, accepted: set[str], **inputs):
    """The encoder's outputs (`return_dict=True`) for the `inputs` given (not None) that its forward accepts
    (`accepted`, its parameter names): DistilBERT takes no token_type_ids, ALBERT and ELECTRA take all."""
    return encoder(**{k: v for k, v in inputs.items() if v is not None and k in accepted}, return_dict=True)
