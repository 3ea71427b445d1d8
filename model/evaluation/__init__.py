"""Judging what was trained: a noise predictor against classical denoisers (:mod:`~model.evaluation.evaluate`),
and a class-conditional generator with a judge CNN (:mod:`~model.evaluation.judge`,
:mod:`~model.evaluation.judge_train`, :mod:`~model.evaluation.gen_metrics`, :mod:`~model.evaluation.evaluate_gen`)."""
