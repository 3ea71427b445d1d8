"""Serving the network to many sessions at once: settings read once at the edge, the inference queue, batching,
the arithmetic and graph choice, cost timing and the process policy.

* :mod:`~model.serving.settings`: :class:`~model.serving.settings.ServingSettings`, every serving variable, typed,
  read from the environment once by the edge (the app's entry, a command's ``main``).
* :mod:`~model.serving.runtime`: the inference queue (first come, first served) and the process policy (threads,
  allocator, GIL switch interval); :mod:`~model.serving.batching`: students' passes on one model run as one batch.
* :mod:`~model.serving.precision`, :mod:`~model.serving.graph`: the arithmetic (fp32, or a faster path that passes
  a fidelity guard), eager or as a TorchScript graph.
* :mod:`~model.serving.cost`: what a piece of work costs before it runs (MACs counted, seconds measured).
* :mod:`~model.serving.process`: threads, allocator, GIL; :mod:`~model.serving.service`: the one ``Serving`` object
  that owns the queue, the batcher, the arithmetic policy and the traces, built at the edge.
"""
