"""Make int8 (static QDQ) and fp16 copies of the models (I/O; needs the `onnx` package).

Used by ``weights/quantize.py`` / ``weights/fp16.py`` and the tests, never
by the pipeline (which only opens the copies, see `precision`).

Calibration inputs come from real footage through the fp32 models, so each
model is calibrated on what it sees in a run: the detector on letterboxed
frames, the embedder on aligned crops of the faces the fp32 detector finds,
the liveness models on their own enlarged crops of those faces.

What stays float (measured on the Friends clip, `weights/compare.py`):

- the detector's output heads (the last convolution of every score, box and
  landmark branch and what follows it): an 8-bit box distance is a step of
  1/255 of its range, times a stride of up to 32 and the letterbox scale:
  several pixels in the frame;
- nothing else: backbones and necks are per-channel int8 weights and uint8
  activations (the U8S8 kernels x86 runs fastest).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceid_jobs.errors import ModelError

__all__ = [
    "CalibrationSet",
    "calibration_set",
    "convert_fp16",
    "detector_head_nodes",
    "quantize_int8",
    "read_frames",
]

log = logging.getLogger(__name__)


def read_frames(video: str | os.PathLike[str], count: int, *, offset: float = 0.5) -> list[np.ndarray]:
    """`count` frames spread evenly over a video (BGR uint8).

    Args:
        video: the video file.
        count: how many frames.
        offset: where in each of the `count` equal stretches the frame is
            taken (0.5: its middle), so different offsets give disjoint sets.

    Raises:
        ModelError: the video cannot be opened or read.
    """
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ModelError(f"{video}: cannot open video for calibration")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total < 1:
            raise ModelError(f"{video}: no frames")
        wanted = sorted({min(total - 1, int((i + offset) * total / count)) for i in range(count)})
        frames = []
        for index in wanted:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        if not frames:
            raise ModelError(f"{video}: no frame could be decoded")
        return frames
    finally:
        cap.release()


class CalibrationSet:
    """Model inputs per role, exactly as the fp32 wrappers feed them.

    Attributes:
        detector: (1, 3, H, W) float32 blobs, one per frame.
        embedder: (n, 3, 112, 112) float32 blobs of aligned faces.
        liveness: per liveness model, (n, 3, 80, 80) float32 blobs of its crops.
    """

    def __init__(self, detector: list[np.ndarray], embedder: list[np.ndarray],
                 liveness: list[list[np.ndarray]]) -> None:
        self.detector = detector
        self.embedder = embedder
        self.liveness = liveness


def calibration_set(models: Any, frames: Sequence[np.ndarray], *, batch: int = 8) -> CalibrationSet:
    """Inputs for calibrating every model of a fp32 `ModelSet` from video frames.

    Args:
        models: a fp32 `ModelSet` (its detector finds the faces).
        frames: BGR frames of the footage.
        batch: faces per calibration blob for the embedder and liveness.

    Raises:
        ModelError: no face was found in the frames.
    """
    from faceid_jobs.models.align import align_faces
    from faceid_jobs.models.arcface import preprocess

    det_blobs, crops = [], []
    live_crops: list[list[np.ndarray]] = [[] for _ in (models.liveness.models if models.liveness else [])]
    for frame in frames:
        det_blobs.append(models.detector.input_blob(frame))
        faces = models.detector.detect(frame)
        if len(faces) == 0:
            continue
        crops.append(align_faces(frame, faces.kps, size=models.embedder.input_size[0]))
        if models.liveness is not None:
            for i, c in enumerate(models.liveness.crops(frame, faces.xyxy)):
                live_crops[i].append(c)
    if not crops:
        raise ModelError("calibration: the detector found no face in the frames")
    faces_all = np.concatenate(crops)
    emb = [preprocess(faces_all[s : s + batch], models.embedder.style) for s in range(0, len(faces_all), batch)]
    live = []
    for per_model in live_crops:
        arr = np.concatenate(per_model)
        live.append([arr[s : s + batch].transpose(0, 3, 1, 2).astype(np.float32)
                     for s in range(0, len(arr), batch)])
    log.info("calibration: %d frames, %d faces", len(det_blobs), len(faces_all))
    return CalibrationSet(det_blobs, emb, live)


def detector_head_nodes(model_path: str | os.PathLike[str]) -> list[str]:
    """Names of the detector's output-head nodes: walking back from each graph
    output, every node up to and including the first Conv."""
    import onnx
    import onnx.version_converter

    graph = onnx.load(str(model_path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    found: list[str] = []
    for output in graph.output:
        stack = [output.name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in found:
                continue
            found.append(node.name)
            if node.op_type != "Conv":
                stack.extend(i for i in node.input[:1])
    return found


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of blobs."""

    def __init__(self, input_name: str, blobs: Sequence[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter([{input_name: b} for b in blobs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_int8(source: str | os.PathLike[str], dest: str | os.PathLike[str], blobs: Sequence[np.ndarray], *,
                  exclude: Sequence[str] = (), per_channel: bool = True) -> Path:
    """Statically quantize an fp32 ONNX model to int8 QDQ, calibrated on `blobs`.

    Args:
        source: the fp32 model.
        dest: where the int8 model is written (atomically: temp file + rename).
        blobs: calibration inputs for its one input.
        exclude: node names left in float (e.g. `detector_head_nodes`).
        per_channel: one weight scale per output channel (Conv).

    Returns:
        `dest`.
    """
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not blobs:
        raise ModelError(f"{Path(source).name}: no calibration inputs")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="faceid-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph folding first, as onnxruntime advises: a
        # quantized graph that keeps unfolded nodes runs them in float.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
        model = onnx.load(str(prepared))
        if _opset(model) < 13:
            # Per-channel DequantizeLinear (its axis attribute) needs opset 13;
            # the InsightFace and minivision exports are opset 11.
            model = onnx.version_converter.convert_version(model, 13)
            onnx.save(model, str(prepared))
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(out),
            _Reader(input_name, blobs),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=list(exclude),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        _copy(out, dest)
    return dest


def convert_fp16(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Convert an fp32 ONNX model to fp16 weights and compute, float32 inputs and outputs.

    Inputs and outputs stay float32 (`keep_io_types`), so the wrappers feed
    and read the copy exactly as the original; casts at the edges are cheap.
    Uses onnxruntime's own converter (onnxruntime.transformers.float16): no
    extra package.
    """
    import onnx
    import onnx.version_converter
    from onnxruntime.transformers.float16 import convert_float_to_float16

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    _drop_duplicate_casts(half.graph)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=dest.parent)
    os.close(fd)
    try:
        onnx.save(half, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _drop_duplicate_casts(graph: Any) -> None:
    """Remove repeated identical nodes (the converter adds the Cast before a
    float-only consumer once per consumer, named after the tensor, so a tensor
    read by two of them, as in SCRFD's shape-computing Resize path, gets the
    same Cast twice, which onnxruntime refuses as a duplicate definition)."""
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...], bytes]] = set()
    keep = []
    for node in graph.node:
        key = (node.op_type, tuple(node.input), tuple(node.output),
               b"".join(a.SerializeToString() for a in node.attribute))
        if key not in seen:
            seen.add(key)
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _copy(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(src.read_bytes())
        os.chmod(tmp, 0o644)  # a model, not a secret: readable like the weights it came from
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
