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
from faceid_jobs.models.runtime import binding_device, create_session
from faceid_jobs.models.scrfd import SCRFD, fitted_shape

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
    io_binding: bool = False,
    trt_cache_dir: str | os.PathLike[str] | None = None,
    trt_fp16: bool = False,
    max_batch: int = 1,
    **opts: Any,
) -> Model:
    """Open a model file and return the matching wrapper.

    Args:
        path: the ``.onnx`` file.
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (see `runtime.choose_providers`).
        threads: intra-op threads, 0 = one per core.
        expect: when given (``"detector"``, ``"embedder"`` or ``"liveness"``),
            a graph of another kind is an error.
        io_binding: on CUDA/TensorRT, run through IO binding with GPU buffers.
        trt_cache_dir: TensorRT engine cache (``device="tensorrt"`` only).
        trt_fp16: TensorRT may build fp16 kernels.
        max_batch: largest batch the wrapper will feed (TensorRT profile).
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
    trt = {}
    if device == "tensorrt":
        trt = {"trt_cache_dir": trt_cache_dir, "trt_fp16": trt_fp16,
               "trt_shapes": _trt_shapes(p, max_batch, int(opts.get("det_size", 640)))}
    session = create_session(p, device=device, threads=threads, **trt)
    kind = classify(session)
    if kind is None:
        raise ModelError(f"{p.name}: not a face detector, embedder or liveness graph ({describe(session)})")
    if expect is not None and kind != expect:
        raise ModelError(f"{p.name}: graph kind is {kind}, expected {expect}")
    log.debug("%s: %s on %s", p.name, kind, session.get_providers())
    opts["io_binding"] = binding_device(session, io_binding)
    try:
        if kind == "detector":
            return SCRFD(session, **opts)
        if kind == "embedder":
            return ArcFace(session, **opts)
        opts.setdefault("name", p.name)
        return MiniFASNet(session, **opts)
    except ModelError as exc:
        raise ModelError(f"{p.name}: {exc}") from None


def _trt_shapes(path: Path, max_batch: int, det_size: int) -> tuple[str, str, str] | None:
    """A TensorRT profile covering what the wrappers feed: detector inputs up to
    det_size × det_size (fit shapes vary with the frame), embedder/liveness
    batches 1..max_batch. None when the graph's input is fully fixed."""
    import onnxruntime as ort

    # A CPU session only to read the input signature (TensorRT's would build an engine).
    info = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0]
    shape = list(info.shape)
    if all(isinstance(d, int) for d in shape):
        return None
    if not isinstance(shape[2], int):  # detector: dynamic H, W, batch 1
        small, opt, big = [1, 3, 32, 32], [1, 3, *fitted_shape(720, 1280, det_size)], [1, 3, det_size, det_size]
    else:
        small, opt, big = [1, *shape[1:]], [max_batch, *shape[1:]], [max_batch, *shape[1:]]
    return tuple(f"{info.name}:{'x'.join(map(str, s))}" for s in (small, opt, big))  # type: ignore[return-value]
