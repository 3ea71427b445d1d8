"""Running a test body in many threads at once (the inference queue and the batcher tests)."""

from __future__ import annotations

import threading


def run_threads(n: int, body, before_release=None) -> list[BaseException]:
    """Run body(i) in n threads; fail the test if any is stuck. ``before_release`` runs while they run.

    Returns the exceptions the threads raised (an empty list when all went well).
    """
    errors: list[BaseException] = []

    def wrapped(i):
        try:
            body(i)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(n)]
    for th in threads:
        th.start()
    if before_release is not None:
        before_release()
    for th in threads:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in threads), "a thread is stuck"
    return errors
