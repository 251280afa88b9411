"""Fine-tuning a matcher's towers on image-caption pairs (:meth:`mmsim.Matcher.fit`).

- :mod:`~mmsim.training.trainer`: the run (data, epochs, validation, best checkpoint);
- :mod:`~mmsim.training.parameters`: what trains (freezing, blocks, the logit scale and
  bias), the optimiser and the learning-rate schedule;
- :mod:`~mmsim.training.losses`: the CLIP and SigLIP losses and hard negatives;
- :mod:`~mmsim.training.augment`: training-time image augmentation;
- :mod:`~mmsim.training.log`: the metrics log (JSONL or CSV);
- :mod:`~mmsim.training.options`: the fit options (:class:`FitConfig`).
"""
