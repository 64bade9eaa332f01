"""Run an iterator in a background thread through a bounded queue.

Decoding (OpenCV) and inference (onnxruntime) both release the GIL, so a
producer thread keeps the next frames ready while the models run, and the
queue bound keeps memory flat however long the video is.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], maxsize: int) -> Iterator[T]:
    """Yield what `items` yields, produced up to `maxsize` items ahead.

    An exception in the producer is re-raised in the consumer at the point it
    happened; closing the consumer early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer
            q.put(_Failure(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()
        q.put(_DONE)

    thread = threading.Thread(target=produce, name="faceid-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        # Drain so a producer blocked on put() can see the stop flag and exit.
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        thread.join()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
