"""Continued masked-LM pretraining on in-domain text: texts to whole-word-masked chunks (``inputs``), cheap
adaptation and the masked-positions trainer (``training``). Its data are plain text files (``vocab.read_texts``)."""
