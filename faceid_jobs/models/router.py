"""Open an ONNX file once and wrap it in the model class its graph calls for (I/O).

The graph decides, not the file name (`classify`):

- ≥ 6 outputs whose last dims are all 1, 4 or 10 → `SCRFD` detector;
- one (N, 3, 112, 112) input → `ArcFace` embedder;
- one (N, 3, 80, 80) input and a 3-class output → `MiniFASNet` liveness.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from faceid_jobs.errors import ModelError
from faceid_jobs.models.arcface import ArcFace
from faceid_jobs.models.minifasnet import MiniFASNet
from faceid_jobs.models.runtime import create_session
from faceid_jobs.models.scrfd import SCRFD

__all__ = ["KINDS", "classify", "describe", "load_model"]

log = logging.getLogger(__name__)

KINDS = ("detector", "embedder", "liveness")
Model = SCRFD | ArcFace | MiniFASNet


def describe(session: Any) -> str:
    """One line listing a session's input and output shapes (for error messages)."""
    ins = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
    outs = ", ".join(f"{o.name}{list(o.shape)}" for o in session.get_outputs())
    return f"inputs {ins}; outputs {outs}"


def classify(session: Any) -> str | None:
    """What a graph is, from its input/output signature.

    Args:
        session: anything with onnxruntime's `get_inputs()`/`get_outputs()`.

    Returns:
        ``"detector"``, ``"embedder"``, ``"liveness"``, or None when unknown.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        return None
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1] != 3:
        return None
    last = [o.shape[-1] if o.shape else None for o in outputs]
    if len(outputs) >= 6 and all(d in (1, 4, 10) for d in last) and {1, 4, 10} <= set(last):
        return "detector"
    if len(outputs) != 1:
        return None
    h, w = shape[2], shape[3]
    if h == w == 112:
        return "embedder"
    if h == w == 80 and last[0] == 3:
        return "liveness"
    return None


def load_model(
    path: str | os.PathLike[str],
    *,
    device: str = "auto",
    threads: int = 0,
    expect: str | None = None,
    **opts: Any,
) -> Model:
    """Open a model file and return the matching wrapper.

    Args:
        path: the ``.onnx`` file.
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (see `runtime.choose_providers`).
        threads: intra-op threads, 0 = one per core.
        expect: when given (``"detector"``, ``"embedder"`` or ``"liveness"``),
            a graph of another kind is an error.
        **opts: passed to the wrapper's constructor (e.g. ``det_size`` for SCRFD).

    Returns:
        `SCRFD`, `ArcFace` or `MiniFASNet` around one new session.

    Raises:
        ModelError: the file is missing, not ONNX, not a graph we can place,
            or not of the expected kind; the message names the file.

    Example:
        >>> det = load_model("weights/det_500m.onnx", device="cpu", det_size=480)  # doctest: +SKIP
    """
    p = Path(path)
    if expect is not None and expect not in KINDS:
        raise ValueError(f"expect must be one of {KINDS}, got {expect!r}")
    session = create_session(p, device=device, threads=threads)
    kind = classify(session)
    if kind is None:
        raise ModelError(f"{p.name}: not a face detector, embedder or liveness graph ({describe(session)})")
    if expect is not None and kind != expect:
        raise ModelError(f"{p.name}: graph kind is {kind}, expected {expect}")
    log.debug("%s: %s on %s", p.name, kind, session.get_providers())
    try:
        if kind == "detector":
            return SCRFD(session, **opts)
        if kind == "embedder":
            return ArcFace(session, **opts)
        opts.setdefault("name", p.name)
        return MiniFASNet(session, **opts)
    except ModelError as exc:
        raise ModelError(f"{p.name}: {exc}") from None
