"""Continued masked-LM pretraining on in-domain text: plain text read (``data``: ``text_lines``, the package's one
plain-text reader, and the recipe's splits), texts to whole-word-masked chunks (``inputs``), cheap adaptation and the
masked-positions trainer (``training``)."""
