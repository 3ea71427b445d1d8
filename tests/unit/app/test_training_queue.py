"""The Particle lab's training queue: one training at a time, served in arrival order, places kept while polling."""

from __future__ import annotations

import threading
import time

from app.server.admission import TrainingQueue


def _until(condition, timeout_s: float = 10.0) -> None:
    """Poll ``condition()`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_trainings_are_admitted_one_at_a_time_in_arrival_order():
    q = TrainingQueue(1)
    first = q.join()
    assert q.wait(first, 0.1)  # a free slot: admitted at once
    tickets = [q.join() for _ in range(3)]
    assert [q.ahead(t) for t in tickets] == [0, 1, 2]
    assert not q.wait(tickets[1], 0.05)  # polling without a slot keeps the place...
    assert q.ahead(tickets[1]) == 1  # ...behind the same one
    order: list[int] = []
    refused = [0, 0, 0]  # polls that found no slot, per student

    def student(i: int) -> None:
        while not q.wait(tickets[i], 0.02):
            refused[i] += 1
        order.append(i)
        q.done()

    threads = [threading.Thread(target=student, args=(i,)) for i in (2, 1, 0)]  # start in reverse order
    for th in threads:
        th.start()
    _until(lambda: min(refused) >= 2 or bool(order))  # every student has polled, and been refused, twice
    assert order == [] and q.waiting == 3  # nobody overtakes the running training
    q.done()
    for th in threads:
        th.join(5)
    assert order == [0, 1, 2] and q.waiting == 0


def test_a_student_who_leaves_gives_up_the_place():
    q = TrainingQueue(1)
    a, b, c = q.join(), q.join(), q.join()
    q.leave(b)
    assert q.ahead(c) == 1
    assert q.wait(a, 0.1)
    q.done()
    assert q.wait(c, 0.1)
