"""SCRFD face detector with 5 landmarks around an injected onnxruntime session.

Works with InsightFace's SCRFD exports (det_500m, det_2.5g / scrfd_2.5g_bnkps,
det_10g): 9 outputs (scores, box distances and landmark offsets for strides
8, 16 and 32, two anchors per cell). The outputs are found by shape, not by
tensor name. Pre/post-processing helpers are pure module-level functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from faceid_jobs.errors import ModelError
from faceid_jobs.models.runtime import SessionRunner
from faceid_jobs.types import Faces

__all__ = [
    "SCRFD",
    "anchor_centers",
    "distance2bbox",
    "distance2kps",
    "fitted_shape",
    "letterbox",
    "nms",
]

log = logging.getLogger(__name__)

_STRIDES = {3: (8, 16, 32), 5: (8, 16, 32, 64, 128)}
_MEAN = 127.5
_STD = 128.0


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit an image into a `size`×`size` canvas, keeping its aspect ratio.

    The image is resized so that it fits, placed at the top-left corner, and
    the rest is zero.

    Args:
        image: (H, W, 3) uint8.
        size: canvas side in pixels.

    Returns:
        canvas: (size, size, 3) uint8.
        scale: (2,) float64 ``(sx, sy)``, canvas pixels per image pixel along x
            and y (equal up to rounding of the resized size).

    Example:
        >>> canvas, scale = letterbox(np.zeros((100, 200, 3), np.uint8), 640)
        >>> canvas.shape, scale.tolist()
        ((640, 640, 3), [3.2, 3.2])
    """
    canvas = np.zeros((size, size, 3), np.uint8)
    scale = _letterbox_into(image, canvas)
    return canvas, scale


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be (H, W, 3) with H, W >= 1, got {image.shape}")


def fitted_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Canvas (H, W) for an image whose long side is scaled to `size`: the
    short side is padded only up to the next multiple of 32 (the detector's
    coarsest stride), not to a square.

    Example:
        >>> fitted_shape(720, 1280, 640)
        (384, 640)
    """
    ratio = min(size / width, size / height)
    new_w = min(size, max(1, round(width * ratio)))
    new_h = min(size, max(1, round(height * ratio)))
    return -(-new_h // 32) * 32, -(-new_w // 32) * 32


def _letterbox_into(image: np.ndarray, canvas: np.ndarray, size: int | None = None) -> np.ndarray:
    """Letterbox `image` into a preallocated canvas, its long side scaled to
    `size` (default: the canvas side); returns (sx, sy)."""
    _check_image(image)
    h, w = image.shape[:2]
    size = size or canvas.shape[0]
    ratio = min(size / w, size / h)
    new_w = min(size, max(1, round(w * ratio)))
    new_h = min(size, max(1, round(h * ratio)))
    canvas.fill(0)
    if (new_w, new_h) == (w, h):
        canvas[:h, :w] = image
    else:
        # Bilinear, as the SCRFD reference preprocessing does (and 10x cheaper
        # than INTER_AREA on a 2000-px photo).
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.array([new_w / w, new_h / h], dtype=np.float64)


def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """Anchor centres of one feature map, in input pixels.

    Args:
        height: feature map rows (input height // stride).
        width: feature map columns.
        stride: pixels per cell.
        num_anchors: anchors per cell (repeated consecutively, as SCRFD orders them).

    Returns:
        (height * width * num_anchors, 2) float32 ``(x, y)``, row-major.

    Example:
        >>> anchor_centers(1, 2, 8, 2).tolist()
        [[0.0, 0.0], [0.0, 0.0], [8.0, 0.0], [8.0, 0.0]]
    """
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    return centers


def distance2bbox(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Boxes from anchor points and (left, top, right, bottom) distances.

    Args:
        points: (n, 2) anchor centres ``(x, y)``.
        distance: (n, 4) distances, same units as `points`.

    Returns:
        (n, 4) boxes ``(x1, y1, x2, y2)``, dtype of the inputs.

    Example:
        >>> distance2bbox(np.array([[10.0, 20.0]]), np.array([[1.0, 2.0, 3.0, 4.0]])).tolist()
        [[9.0, 18.0, 13.0, 24.0]]
    """
    return np.concatenate([points - distance[:, :2], points + distance[:, 2:4]], axis=1)


def distance2kps(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Landmarks from anchor points and (dx, dy) offsets.

    Args:
        points: (n, 2) anchor centres ``(x, y)``.
        distance: (n, 2k) offsets ``dx0, dy0, dx1, dy1, ...``.

    Returns:
        (n, k, 2) landmark positions.

    Example:
        >>> distance2kps(np.array([[10.0, 20.0]]), np.array([[1.0, 2.0, -1.0, -2.0]])).tolist()
        [[[11.0, 22.0], [9.0, 18.0]]]
    """
    n = len(points)
    return points[:, None, :] + distance.reshape(n, -1, 2)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (n, 4) ``(x1, y1, x2, y2)``.
        scores: (n,) higher is better.
        iou_threshold: a box is dropped when its IoU with a kept, higher
            scoring box is above this.

    Returns:
        (k,) int64 indices of the kept boxes, by score descending (ties keep
        input order).

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> nms(b, np.array([0.9, 0.8, 0.7]), 0.4).tolist()
        [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class SCRFD:
    """SCRFD detector: BGR image in, `Faces` (boxes, scores, 5 landmarks) out.

    Args:
        session: an onnxruntime session of an SCRFD graph (see `runtime.create_session`).
        det_size: square input side, a multiple of 32. Larger finds smaller
            faces but costs about quadratically more. Ignored (with a warning)
            when the graph has a fixed input size.
        threshold: minimum face score. Lower finds more faces, and more false ones.
        nms_threshold: IoU above which the weaker of two boxes is dropped.
        min_face_px: faces whose shorter box side is below this (original
            image pixels) are dropped.
        fit: size the input to the image: the long side is `det_size`, the
            short side padded only to a multiple of 32 (384×640 for 16:9
            video instead of 640×640: ~40 % less detector time, same scale, so
            the same faces; boxes agree with the square input to within 1 px
            for 99 % of faces). Needs a graph with dynamic H, W. False: the
            square canvas of the SCRFD reference code.
        io_binding: run through IO binding with buffers on this device
            (``"cuda"`` or ``"cpu"``); None: plain `session.run` (see
            `runtime.SessionRunner`).

    Raises:
        ModelError: the graph does not look like SCRFD with landmarks.

    Example:
        >>> det = SCRFD(create_session("det_500m.onnx", "cpu"))  # doctest: +SKIP
        >>> faces = det.detect(cv2.imread("photo.jpg"))  # doctest: +SKIP
    """

    task = "detection"

    def __init__(
        self,
        session: Any,
        *,
        det_size: int = 640,
        threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face_px: float = 0.0,
        fit: bool = False,
        io_binding: str | None = None,
    ) -> None:
        self.session = session
        self._runner = SessionRunner(session, io_binding)
        self.threshold = float(threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face_px = float(min_face_px)
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError("SCRFD: expected one 4-d input (1, 3, H, W)")
        self.input_name = inputs[0].name
        _, _, gh, gw = inputs[0].shape
        if isinstance(gh, int) and isinstance(gw, int):
            if gh != gw or gh % 32:
                raise ModelError(f"SCRFD: fixed input {gh}x{gw} must be square and a multiple of 32")
            if gh != det_size:
                log.warning("SCRFD graph has a fixed %dx%d input; det_size %d ignored", gh, gw, det_size)
            det_size = gh
            fit = False
        if det_size <= 0 or det_size % 32:
            raise ValueError(f"det_size must be a positive multiple of 32, got {det_size}")
        self.det_size = int(det_size)
        self.fit = bool(fit)
        self.output_names = [o.name for o in session.get_outputs()]
        groups: dict[int, list[int]] = {1: [], 4: [], 10: []}
        for i, out in enumerate(session.get_outputs()):
            last = out.shape[-1] if out.shape else None
            if last not in groups:
                raise ModelError(f"SCRFD: output {out.name} has shape {out.shape}, expected last dim 1/4/10")
            groups[last].append(i)
        fmc = len(groups[1])
        if fmc not in _STRIDES or len(groups[4]) != fmc or len(groups[10]) != fmc:
            raise ModelError(
                "SCRFD: expected 3 (or 5) score, box and landmark outputs each, got "
                f"{len(groups[1])}/{len(groups[4])}/{len(groups[10])}"
            )
        self._groups = groups
        self.strides = _STRIDES[fmc]
        self._anchor_cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._buffers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._use_buffers(self.det_size, self.det_size)

    def _use_buffers(self, height: int, width: int) -> None:
        """Point `_canvas`/`_blob` at the reused buffers of an input shape.

        A video has one shape, so after its first frame nothing is allocated
        per frame; photos of many shapes keep only the few latest.
        """
        key = (height, width)
        buffers = self._buffers.pop(key, None)
        if buffers is None:
            buffers = (np.zeros((height, width, 3), np.uint8), np.zeros((1, 3, height, width), np.float32))
        self._buffers[key] = buffers  # most recent last
        while len(self._buffers) > 4:
            del self._buffers[next(iter(self._buffers))]
        self._canvas, self._blob = buffers

    def detect(self, image_bgr: np.ndarray, frame_idx: int = 0, max_faces: int = 0) -> Faces:
        """Detect faces in one image.

        Args:
            image_bgr: (H, W, 3) uint8 BGR image.
            frame_idx: stored in `Faces.frame_idx` for every face.
            max_faces: keep only the best-scoring this many faces; 0 = all.

        Returns:
            `Faces` in original image pixels, sorted by score descending; boxes
            are clipped to the image, landmarks are not (a face cut by the
            frame edge keeps its predicted geometry for alignment).
        """
        if self.fit:
            _check_image(image_bgr)
            shape = fitted_shape(image_bgr.shape[0], image_bgr.shape[1], self.det_size)
            if shape != self._canvas.shape[:2]:
                self._use_buffers(*shape)
        scale = _letterbox_into(image_bgr, self._canvas, self.det_size)
        self._fill_blob()
        outputs = self._runner.run(self.output_names, self.input_name, self._blob)
        boxes, scores, kps = self._decode(outputs)
        keep = nms(boxes, scores, self.nms_threshold)
        boxes, scores, kps = boxes[keep], scores[keep], kps[keep]
        # Back to image pixels: divide by the letterbox scale per axis.
        boxes = boxes / np.tile(scale, 2)
        kps = kps / scale
        h, w = image_bgr.shape[:2]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = side >= max(self.min_face_px, 1e-6)
        boxes, scores, kps = boxes[big], scores[big], kps[big]
        if max_faces > 0:
            boxes, scores, kps = boxes[:max_faces], scores[:max_faces], kps[:max_faces]
        n = len(boxes)
        return Faces(
            xyxy=boxes.astype(np.float32),
            score=scores.astype(np.float32),
            kps=kps.astype(np.float32).reshape(n, 5, 2),
            frame_idx=np.full((n,), frame_idx, np.int64),
        )

    def input_blob(self, image_bgr: np.ndarray) -> np.ndarray:
        """The graph input `detect` would feed for this image (a copy; for calibration)."""
        _check_image(image_bgr)
        if self.fit:
            shape = fitted_shape(image_bgr.shape[0], image_bgr.shape[1], self.det_size)
            if shape != self._canvas.shape[:2]:
                self._use_buffers(*shape)
        _letterbox_into(image_bgr, self._canvas, self.det_size)
        self._fill_blob()
        return self._blob.copy()

    def detect_many(
        self, images: Sequence[np.ndarray], frame_idxs: Sequence[int] | None = None, max_faces: int = 0
    ) -> Faces:
        """Detect faces in several images (one graph call each: the graph has batch 1).

        Args:
            images: (H, W, 3) uint8 BGR images, sizes may differ.
            frame_idxs: one frame index per image; default 0, 1, 2, ...
            max_faces: per image, as in `detect`.

        Returns:
            All faces, image by image, each image's sorted by score.
        """
        if frame_idxs is None:
            frame_idxs = range(len(images))
        if len(frame_idxs) != len(images):
            raise ValueError(f"got {len(images)} images but {len(frame_idxs)} frame indices")
        parts = [self.detect(img, int(idx), max_faces) for img, idx in zip(images, frame_idxs, strict=True)]
        return Faces.merge(parts) if parts else Faces.empty()

    def _fill_blob(self) -> None:
        """Canvas (BGR uint8) → blob (1, 3, S, S) RGB, (x − 127.5) / 128, in place."""
        chw = self._canvas[:, :, ::-1].transpose(2, 0, 1)
        np.subtract(chw, _MEAN, out=self._blob[0], casting="unsafe")
        self._blob *= 1.0 / _STD

    def _anchors(self, stride: int, count: int) -> np.ndarray:
        rows, cols = self._canvas.shape[0] // stride, self._canvas.shape[1] // stride
        num_anchors = count // (rows * cols)
        if num_anchors < 1 or num_anchors * rows * cols != count:
            raise ModelError(
                f"SCRFD: stride {stride} output has {count} rows, not a multiple of {rows}x{cols}"
            )
        key = (rows, cols, stride, num_anchors)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = anchor_centers(rows, cols, stride, num_anchors)
        return self._anchor_cache[key]

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw outputs → boxes (n, 4), scores (n,), kps (n, 5, 2) above threshold, input pixels."""
        flat = [np.asarray(o).reshape(-1, np.asarray(o).shape[-1]) for o in outputs]
        # Finest stride has the most rows; stable sort keeps graph order on ties.
        by_rows = {k: sorted(idx, key=lambda i: -len(flat[i])) for k, idx in self._groups.items()}
        all_boxes, all_scores, all_kps = [], [], []
        for level, stride in enumerate(self.strides):
            scores = flat[by_rows[1][level]][:, 0]
            centers = self._anchors(stride, len(scores))
            sel = np.flatnonzero(scores >= self.threshold)
            if sel.size == 0:
                continue
            pts = centers[sel]
            all_boxes.append(distance2bbox(pts, flat[by_rows[4][level]][sel] * stride))
            all_kps.append(distance2kps(pts, flat[by_rows[10][level]][sel] * stride))
            all_scores.append(scores[sel])
        if not all_scores:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_kps)
