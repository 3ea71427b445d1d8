"""The Particle lab's training queue: one training at a time, served in arrival order, places kept while polling."""

from __future__ import annotations

import threading
import time

from app.backend_particles import TrainingQueue


def test_trainings_are_admitted_one_at_a_time_in_arrival_order():
    q = TrainingQueue(1)
    first = q.join()
    assert q.wait(first, 0.1)  # a free slot: admitted at once
    tickets = [q.join() for _ in range(3)]
    assert [q.ahead(t) for t in tickets] == [0, 1, 2]
    assert not q.wait(tickets[1], 0.05)  # polling without a slot keeps the place...
    assert q.ahead(tickets[1]) == 1  # ...behind the same one
    order: list[int] = []

    def student(i: int) -> None:
        while not q.wait(tickets[i], 0.02):
            pass
        order.append(i)
        time.sleep(0.02)
        q.done()

    threads = [threading.Thread(target=student, args=(i,)) for i in (2, 1, 0)]  # start in reverse order
    for th in threads:
        th.start()
    time.sleep(0.1)
    assert order == []  # nobody overtakes the running training
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
