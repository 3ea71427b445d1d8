"""The networks: where they come from and what is inside them.

* :mod:`~model.nets.network`: :func:`~model.nets.network.load_model` and :class:`~model.nets.network.LoadedModel`,
  the only caller of the UNet.
* :mod:`~model.nets.hub`, :mod:`~model.nets.checkpoint_io`: model sources and the diffusers folder layout.
* How a network is served (the queue, batching, the arithmetic, what a pass costs) is :mod:`model.serving`.
* :mod:`~model.nets.anatomy`, :mod:`~model.nets.probe`: the parts of a UNet and what flows through them.
"""
