"""Serving the network to many sessions at once: settings read once at the edge, the inference queue, batching,
the arithmetic and graph choice, cost timing and the process policy.

* :mod:`~model.serving.settings`: :class:`~model.serving.settings.ServingSettings`, every serving variable, typed,
  read from the environment once by the edge (the app's entry, a command's ``main``).
"""
