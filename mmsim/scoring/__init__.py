"""How embeddings become scores, decisions and probabilities, and how well they do.

- :mod:`~mmsim.scoring.similarity`: similarity strategies (cosine, dot, the model's logit);
- :mod:`~mmsim.scoring.thresholds`: thresholding strategies (fixed, calibrated, operating
  points) that turn a score into a decision and P(match);
- :mod:`~mmsim.scoring.calibration`: the fitting maths (logistic, isotonic, operating points);
- :mod:`~mmsim.scoring.pairs`: scoring aligned (query, response) pairs;
- :mod:`~mmsim.scoring.fitting`: fitting a threshold on labelled pairs;
- :mod:`~mmsim.scoring.metrics` and :mod:`~mmsim.scoring.report`: ROC AUC, F1, Brier,
  calibration error, reliability diagrams;
- :mod:`~mmsim.scoring.schemas`: the option schemas of the core's strategies.
"""
