"""What the benchmarks in bench/ share: each bench/<name>.py is a thin script that imports this package (and app/ or
model/), never another script. Run as ``.venv/bin/python bench/<name>.py``, Python puts bench/ first on sys.path, so
``import harness`` finds this folder; the tests find it through pytest's ``pythonpath`` (pyproject.toml).

* :mod:`harness.server`: ``streamlit run`` on a free port on 127.0.0.1 (also tests/e2e/'s server), the model it
  serves, Chromium's path and flags, bench/out/.
* :mod:`harness.measure`: RSS and CPU seconds of the process trees a benchmark started.
* :mod:`harness.stats`: the one percentile, and the n/p50/p95/max row of a list of latencies.
* :mod:`harness.timing`: the server-side timing benchmarks' options, median/p90 and table.
* :mod:`harness.ws_client`: a Streamlit client speaking the app's websocket protocol (no browser).
* :mod:`harness.students`: the classroom's websocket students, their photos and results, how they arrive.
* :mod:`harness.browser_student`: the same classroom in headless Chromium (bench/load.py ``--client browser``).
* :mod:`harness.cluster`: the local cluster behind haproxy and the student that keeps its affinity cookie.
* :mod:`harness.failover_report`, :mod:`harness.soak_report`: what bench/failover.py and bench/soak.py report.
* :mod:`harness.bombs`: the worst small image files; :mod:`harness.busy`: students as threads of one process.
"""
