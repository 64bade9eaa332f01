"""ArcFace-style face embedder around an injected onnxruntime session.

Takes aligned 112×112 BGR crops (see `align.align_faces`) and returns
L2-normalised embeddings. Two input conventions are supported, chosen from
the graph (the rule is `infer_style`):

- ``"arcface"`` (InsightFace w600k_*, glint360k_*, ...): RGB,
  ``(x − 127.5) / 127.5``.
- ``"mobilefacenet"`` (foamliu/MobileFaceNet 128-d): RGB, ``x / 255`` then
  ImageNet mean/std, and the embedding of the horizontally flipped face is
  added before normalising, as its authors do.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from faceid_jobs.errors import ModelError
from faceid_jobs.models.runtime import SessionRunner

__all__ = ["STYLES", "ArcFace", "infer_style", "preprocess"]

log = logging.getLogger(__name__)

STYLES = ("arcface", "mobilefacenet")
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def infer_style(dim: int) -> str:
    """The input convention of an embedding graph, from its output size.

    Rule: a 128-d output is the foamliu MobileFaceNet convention; every other
    size (InsightFace's recognisers are all 512-d) is the InsightFace one.
    Pass ``style=`` to `ArcFace` for a graph that breaks this rule.

    Example:
        >>> infer_style(512), infer_style(128)
        ('arcface', 'mobilefacenet')
    """
    return "mobilefacenet" if dim == 128 else "arcface"


def preprocess(crops: np.ndarray, style: str, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 crops → normalised RGB NCHW float32 blob.

    Args:
        crops: (n, H, W, 3) uint8 BGR.
        style: ``"arcface"`` or ``"mobilefacenet"``.
        out: optional preallocated (n, 3, H, W) float32 buffer to fill.

    Returns:
        (n, 3, H, W) float32 (`out` when given).

    Example:
        >>> preprocess(np.full((1, 2, 2, 3), 255, np.uint8), "arcface")[0, :, 0, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    rgb = crops[..., ::-1].transpose(0, 3, 1, 2)
    if out is None:
        out = np.empty(rgb.shape, np.float32)
    if style == "arcface":
        np.subtract(rgb, 127.5, out=out, casting="unsafe")
        out *= 1.0 / 127.5
    else:
        np.multiply(rgb, 1.0 / 255.0, out=out, casting="unsafe")
        out -= _IMAGENET_MEAN[None, :, None, None]
        out /= _IMAGENET_STD[None, :, None, None]
    return out


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class ArcFace:
    """Face embedder: aligned crops in, unit-length embeddings out.

    Args:
        session: an onnxruntime session of a recognition graph with one
            (N, 3, H, W) input and one (N, D) output.
        style: ``"auto"`` (see `infer_style`), ``"arcface"`` or ``"mobilefacenet"``.
        flip: add the embedding of the mirrored crop before normalising;
            default: only for the ``"mobilefacenet"`` style. Costs a second pass.
        io_binding: device of IO-bound buffers (``"cuda"``/``"cpu"``), or None
            for plain `session.run` (see `runtime.SessionRunner`).

    Attributes:
        dim: embedding size D, read from the graph's output shape.
        input_size: (H, W) the graph expects, normally (112, 112).
        batched: whether the graph accepts batches (dynamic batch dim); a
            fixed batch of 1 is run one face at a time.

    Raises:
        ModelError: the graph does not have that shape.

    Example:
        >>> emb = ArcFace(create_session("w600k_mbf.onnx", "cpu"))  # doctest: +SKIP
        >>> emb.embed(align_faces(image, faces.kps)).shape  # doctest: +SKIP
        (2, 512)
    """

    task = "recognition"

    def __init__(self, session: Any, *, style: str = "auto", flip: bool | None = None,
                 io_binding: str | None = None) -> None:
        self.session = session
        self._runner = SessionRunner(session, io_binding)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"ArcFace: expected one input and one output, got {len(inputs)} and {len(outputs)}"
            )
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(s, int) for s in shape[2:]):
            raise ModelError(f"ArcFace: input must be (N, 3, H, W) with fixed H, W, got {shape}")
        dim = outputs[0].shape[-1] if outputs[0].shape else None
        if not isinstance(dim, int) or dim <= 0:
            raise ModelError(f"ArcFace: output must be (N, D) with a fixed D, got {outputs[0].shape}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_size = (int(shape[2]), int(shape[3]))
        self.dim = int(dim)
        # A symbolic/None batch dim runs batches (w600k declares output [1, 512]
        # but its input batch is dynamic and batches work); a fixed one does not.
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1)
        if style == "auto":
            style = infer_style(self.dim)
        if style not in STYLES:
            raise ValueError(f"style must be auto or one of {STYLES}, got {style!r}")
        self.style = style
        self.flip = (style == "mobilefacenet") if flip is None else bool(flip)
        self._single = np.zeros((1, 3, *self.input_size), np.float32)
        log.debug(
            "ArcFace: dim %d, input %s, style %s, batched %s", self.dim, self.input_size, style, self.batched
        )

    def embed(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embed aligned face crops.

        Args:
            crops: (n, H, W, 3) uint8 BGR crops at `input_size` (112×112).
            batch_size: faces per graph call when the graph takes batches.

        Returns:
            (n, dim) float32, each row of unit L2 norm; (0, dim) for n = 0.
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (*self.input_size, 3):
            raise ValueError(
                f"crops must be (n, {self.input_size[0]}, {self.input_size[1]}, 3), got {crops.shape}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        feats = self._forward(crops, batch_size)
        if self.flip:
            feats = feats + self._forward(crops[:, :, ::-1], batch_size)
        return _l2_normalise(feats)

    def _forward(self, crops: np.ndarray, batch_size: int) -> np.ndarray:
        """Raw (unnormalised) graph outputs, (n, dim) float32."""
        out = np.empty((len(crops), self.dim), np.float32)
        if not self.batched:
            for i in range(len(crops)):
                preprocess(crops[i : i + 1], self.style, out=self._single)
                res = self._runner.run([self.output_name], self.input_name, self._single)[0]
                out[i] = res.reshape(-1)
            return out
        for start in range(0, len(crops), batch_size):
            blob = preprocess(crops[start : start + batch_size], self.style)
            res = self._runner.run([self.output_name], self.input_name, blob)[0]
            out[start : start + len(blob)] = res.reshape(len(blob), self.dim)
        return out
