"""Pictures: untrusted bytes in (:mod:`~model.images.decode`), tensors out and back (:mod:`~model.images.tensors`),
the blog figure of a reverse trajectory (:mod:`~model.images.figure`), and new images generated from pure noise
(:mod:`~model.images.generate`). Built on :mod:`model.diffusion`; never imports the networks' loading."""
