"""MiniFASNet silent liveness (anti-spoofing) around injected onnxruntime sessions.

Each model looks at the face box enlarged by its own scale (2.7 for
MiniFASNetV2, 4.0 for MiniFASNetV1SE), resized to 80×80, BGR raw 0–255
floats, and outputs 3-class logits (class 1 = live). `LivenessFusion`
averages the softmax of several models, as minivision's reference does.
The crop rule is the pure function `liveness_crop_box`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceid_jobs.errors import ModelError
from faceid_jobs.models.runtime import SessionRunner

__all__ = ["LivenessFusion", "MiniFASNet", "liveness_crop_box", "scale_from_name", "softmax"]

log = logging.getLogger(__name__)

LIVE_CLASS = 1
# "..._2.7_80x80..." anywhere, or minivision's "<scale>_<...>_80x80_<Model>" at the start.
_MINIVISION_NAME = re.compile(r"^(\d+(?:\.\d+)?)(?:_\d+)*_\d+x\d+_")
_SCALE_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)_\d+x\d+")


def scale_from_name(name: str | os.PathLike[str]) -> float | None:
    """The crop scale encoded in a MiniFASNet file name, if any.

    Understands ``..._2.7_80x80.onnx`` and minivision's ``4_0_0_80x80_MiniFASNetV1SE``
    (scale 4.0: the first field, as minivision's own parser reads it).

    Example:
        >>> scale_from_name("minifasnet_v2_2.7_80x80.onnx"), scale_from_name("x.onnx")
        (2.7, None)
    """
    stem = Path(name).name
    match = _MINIVISION_NAME.match(stem) or _SCALE_SIZE.search(stem)
    return float(match.group(1)) if match else None


def liveness_crop_box(
    xyxy: Sequence[float] | np.ndarray, image_w: int, image_h: int, scale: float
) -> tuple[int, int, int, int]:
    """The region a MiniFASNet model looks at, by minivision's rule.

    The box is scaled by `scale` about its centre; the scale is first capped
    so that the enlarged box fits in the image (``(W−1)/w`` and ``(H−1)/h``);
    a crop that sticks out is then shifted back inside, never padded.

    Args:
        xyxy: one face box ``(x1, y1, x2, y2)`` in image pixels.
        image_w: image width.
        image_h: image height.
        scale: enlargement factor (2.7, 4.0, ...).

    Returns:
        ``(x1, y1, x2, y2)`` inclusive integer pixel bounds inside the image;
        the crop is ``image[y1:y2 + 1, x1:x2 + 1]``.

    Example:
        >>> liveness_crop_box((40, 40, 60, 60), 100, 100, 2.0)
        (30, 30, 70, 70)
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if image_w < 1 or image_h < 1:
        raise ValueError(f"image size must be positive, got {image_w}x{image_h}")
    box_w = max(x2 - x1, 1.0)
    box_h = max(y2 - y1, 1.0)
    scale = min((image_h - 1) / box_h, (image_w - 1) / box_w, scale)
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = x1 + box_w / 2, y1 + box_h / 2
    left, top = cx - new_w / 2, cy - new_h / 2
    right, bottom = cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right -= left
        left = 0.0
    if top < 0:
        bottom -= top
        top = 0.0
    if right > image_w - 1:
        left -= right - image_w + 1
        right = image_w - 1.0
    if bottom > image_h - 1:
        top -= bottom - image_h + 1
        bottom = image_h - 1.0
    # Guard rounding at the edges so the crop is never empty or outside.
    ix1 = min(max(int(left), 0), image_w - 1)
    iy1 = min(max(int(top), 0), image_h - 1)
    ix2 = min(max(int(right), ix1), image_w - 1)
    iy2 = min(max(int(bottom), iy1), image_h - 1)
    return ix1, iy1, ix2, iy2


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) logits, float32.

    Example:
        >>> softmax(np.zeros((1, 2))).tolist()
        [[0.5, 0.5]]
    """
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class MiniFASNet:
    """One MiniFASNet liveness model.

    Args:
        session: an onnxruntime session with one (N, 3, H, W) input and an
            (N, 3) logits output.
        scale: crop enlargement; default read from `name` (or the session's
            model path), e.g. ``_2.7_80x80`` → 2.7.
        name: file name to read the scale from.
        io_binding: device of IO-bound buffers (``"cuda"``/``"cpu"``), or None
            for plain `session.run` (see `runtime.SessionRunner`).

    Raises:
        ModelError: the graph has another shape, or no scale is given and the
            name does not contain one.
    """

    task = "liveness"

    def __init__(self, session: Any, scale: float | None = None, *, name: str | None = None,
                 io_binding: str | None = None) -> None:
        self.session = session
        self._runner = SessionRunner(session, io_binding)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError("MiniFASNet: expected one input and one output")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(s, int) for s in shape[2:]):
            raise ModelError(f"MiniFASNet: input must be (N, 3, H, W) with fixed H, W, got {shape}")
        if not outputs[0].shape or outputs[0].shape[-1] != 3:
            raise ModelError(f"MiniFASNet: output must be (N, 3) logits, got {outputs[0].shape}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_size = (int(shape[2]), int(shape[3]))
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1)
        if scale is None:
            source = name or getattr(session, "_model_path", None) or ""
            scale = scale_from_name(source) if source else None
            if scale is None:
                raise ModelError(
                    f"MiniFASNet {source or '(unnamed)'}: crop scale not given and not in the "
                    "file name (expected like _2.7_80x80)"
                )
        if scale <= 0:
            raise ModelError(f"MiniFASNet: scale must be positive, got {scale}")
        self.scale = float(scale)

    def crops(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Model-ready crops: (n, H, W, 3) uint8 BGR, one per box."""
        h, w = image_bgr.shape[:2]
        ih, iw = self.input_size
        out = np.empty((len(xyxy), ih, iw, 3), np.uint8)
        for i, box in enumerate(np.asarray(xyxy, np.float64)):
            x1, y1, x2, y2 = liveness_crop_box(box, w, h, self.scale)
            cv2.resize(image_bgr[y1 : y2 + 1, x1 : x2 + 1], (iw, ih), dst=out[i])
        return out

    def probabilities(self, image_bgr: np.ndarray, xyxy: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Softmax over the 3 classes for each face, (n, 3) float32."""
        return self.probabilities_of_crops(self.crops(image_bgr, xyxy), batch_size)

    def probabilities_of_crops(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Softmax over the 3 classes for crops made by `crops`, (n, 3) float32."""
        probs = np.empty((len(crops), 3), np.float32)
        step = batch_size if self.batched else 1
        for start in range(0, len(crops), step):
            # BGR, raw 0–255 floats, NCHW: no mean/std.
            blob = crops[start : start + step].transpose(0, 3, 1, 2).astype(np.float32)
            logits = self._runner.run([self.output_name], self.input_name, blob)[0]
            probs[start : start + len(blob)] = softmax(logits.reshape(len(blob), 3))
        return probs


class LivenessFusion:
    """Several MiniFASNet models fused by averaging their softmax.

    Args:
        models: one or more `MiniFASNet` (the reference uses 2.7× V2 + 4.0× V1SE).

    Example:
        >>> fusion = LivenessFusion([v2, v1se])  # doctest: +SKIP
        >>> fusion.score(image, faces.xyxy)  # doctest: +SKIP
        array([0.998], dtype=float32)
    """

    task = "liveness"

    def __init__(self, models: Sequence[MiniFASNet]) -> None:
        if not models:
            raise ModelError("LivenessFusion needs at least one MiniFASNet model")
        self.models = list(models)

    def score(self, image_bgr: np.ndarray, xyxy: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """P(live) for each face box.

        Args:
            image_bgr: (H, W, 3) uint8 BGR image the boxes are in.
            xyxy: (n, 4) face boxes in image pixels (e.g. `Faces.xyxy`).
            batch_size: crops per graph call.

        Returns:
            (n,) float32 in [0, 1]: class 1 of the mean softmax of all models.
        """
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3), got {image_bgr.shape}")
        if len(boxes) == 0:
            return np.zeros((0,), np.float32)
        return self.score_crops(self.crops(image_bgr, boxes), batch_size)

    def crops(self, image_bgr: np.ndarray, xyxy: np.ndarray) -> list[np.ndarray]:
        """Each model's crops of the boxes (one (n, H, W, 3) uint8 array per model).

        Lets callers cut crops frame by frame, drop the frames, and score the
        crops of many frames in one batch with `score_crops`.
        """
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        return [model.crops(image_bgr, boxes) for model in self.models]

    def score_crops(self, crops: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """P(live) for crops from `crops` (possibly concatenated across frames), (n,) float32."""
        if len(crops) != len(self.models):
            raise ValueError(f"expected crops for {len(self.models)} models, got {len(crops)}")
        n = len(crops[0])
        if n == 0:
            return np.zeros((0,), np.float32)
        total = np.zeros((n, 3), np.float32)
        for model, model_crops in zip(self.models, crops, strict=True):
            total += model.probabilities_of_crops(model_crops, batch_size)
        return (total[:, LIVE_CLASS] / len(self.models)).astype(np.float32)
