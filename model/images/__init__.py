"""Pictures: untrusted bytes in (:mod:`~model.images.decode`, its pixel work in :mod:`~model.images.pixels`), tensors
out and back (:mod:`~model.images.tensors`), the blog figure of a reverse trajectory (:mod:`~model.images.figure`,
the 16:9 slide in :mod:`~model.images.slide`, the panels' names and fonts in :mod:`~model.images.labels`), new images
generated from pure noise (:mod:`~model.images.generate`), and the power spectra of the frequency view
(:mod:`~model.images.spectrum`).
Built on :mod:`model.diffusion`; never imports the networks' loading."""
