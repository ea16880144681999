"""``python -m backend evaluate``: encoders against baselines and classifiers on a survey's
shared validation split.

- :mod:`~backend.evaluation.labels`: the label column, ``--merge`` and ``--rare``;
- :mod:`~backend.evaluation.metrics`: pure metric functions (kNN, probes, precision@k, AP,
  recall@k, bootstrap intervals);
- :mod:`~backend.evaluation.baselines`: ``pixel-pca`` and ``random-init`` features;
- :mod:`~backend.evaluation.runner`: the report of one survey (no files written);
- :mod:`~backend.evaluation.report` (no torch: the app reads it) and
  :mod:`~backend.evaluation.plots`: Markdown, JSON and PNG, stored atomically.
"""
