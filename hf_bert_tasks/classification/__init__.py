"""Text classification (the classic ``run_classifier.py`` role) around transformers' own
``AutoModelForSequenceClassification``: file readers (``data``), long texts to model inputs (``inputs``), scores and
their report (``metrics``), pooling, decisions, raw text to labels and prediction files (``predictor``)."""
