"""Named entity recognition: tag schemes (``tagging``), file readers (``data``), words to windows of model inputs and
back (``inputs``), strict entity scores (``metrics``), raw text to entities (``predictor``). The model itself is
``hf_bert_tasks.modeling`` (BERT + optional BiLSTM + CRF)."""
