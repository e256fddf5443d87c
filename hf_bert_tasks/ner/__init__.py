"""Named entity recognition: file readers and the prediction-file writer (``data``), strict entity scores
(``metrics``), raw text to entities and the model a recipe trains (``predictor``).

NER's other two roles live in ``hf_bert_tasks.modeling``, because they ship next to the weights of every CRF model
(its custom pipeline needs them where this package is not installed): tag schemes, spans and label alignment in
``modeling/tagging.py``, words to windows of model inputs and back in ``modeling/windows.py``. The model itself is
``modeling/modeling_bert_crf.py`` (BERT + optional BiLSTM + CRF). No re-exports here: one name, one place.
"""
