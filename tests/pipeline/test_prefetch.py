import threading
import time

import pytest

from faceid_jobs.pipeline.prefetch import prefetch


def test_yields_everything_in_order():
    assert list(prefetch(iter(range(100)), 3)) == list(range(100))


def test_producer_error_reaches_consumer_after_good_items():
    def gen():
        yield 1
        yield 2
        raise ValueError("bad frame")

    seen = []
    with pytest.raises(ValueError, match="bad frame"):
        for x in prefetch(gen(), 2):
            seen.append(x)
    assert seen == [1, 2]


def test_bounded_and_stops_producer_when_consumer_leaves():
    produced = []
    closed = threading.Event()

    def gen():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = prefetch(gen(), 4)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) <= 4 + 2  # queue bound plus items in hand
    it.close()
    assert closed.wait(2)
    deadline = time.time() + 2
    while any(t.name == "faceid-prefetch" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "faceid-prefetch" for t in threading.enumerate())
