"""The custom-code model: what ``save_pretrained`` copies next to the weights.

Every file here imports only torch, transformers, numpy (which transformers requires), the standard library and its
siblings (``from .crf import ...``), so a saved folder loads with ``trust_remote_code=True`` on a machine without
this package.
"""
