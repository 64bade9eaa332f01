"""An in-memory stand-in for a loaded index (flat or sharded): exact search over numpy."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa


class MemoryIndex:
    """What `search_index` uses of an index: `search`, `meta`, `info`, `len()`."""

    def __init__(self, vectors: np.ndarray, meta: pa.Table, embedder_id: str = "emb") -> None:
        self.vectors = np.asarray(vectors, np.float32)
        self.meta = meta
        self.calls: list[int] = []
        self.info = SimpleNamespace(
            build_id="mem", kind="memory", vectors=len(self.vectors),
            dim=self.vectors.shape[1] if self.vectors.ndim == 2 else 0,
            embedder_id=embedder_id, videos=1, created_at="now",
        )

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(k)
        scores = np.asarray(queries, np.float32) @ self.vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), order.astype(np.int64)
