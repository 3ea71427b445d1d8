"""Training the bundled networks (:mod:`~model.training.train`, its building blocks in
:mod:`~model.training.train_lib`, :mod:`~model.training.widen`) and their data sources: photo crops
(:mod:`~model.training.crops`), Debian's photographs (:mod:`~model.training.data`, :mod:`~model.training.gcompris`,
:mod:`~model.training.qt_rcc`) and Fashion-MNIST (:mod:`~model.training.fashion`)."""
