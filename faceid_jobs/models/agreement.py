"""How closely two model sets agree on the same images (pure).

Used to accept a faster variant of the models (int8 on CPU, fp16 or another
execution provider on GPU) against the fp32 CPU reference: `weights/compare.py`,
`bench/gpu_check.py` and the precision tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from faceid_jobs.types import box_iou

__all__ = ["DetectionAgreement", "box_iou", "match_boxes", "summarise_cosines"]


def match_boxes(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one pairs ``(i, j)`` of boxes of `a` and `b` with IoU ≥ `min_iou`
    (the assignment that maximises total IoU)."""
    if len(a) == 0 or len(b) == 0:
        return []
    iou = box_iou(a, b)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if iou[i, j] >= min_iou]


@dataclass
class DetectionAgreement:
    """Faces of a reference and a candidate detector over the same frames.

    Add frames with `add`; read the summary with `summary`.
    """

    reference_faces: int = 0
    candidate_faces: int = 0
    matched: int = 0

    def __post_init__(self) -> None:
        self._errors: list[float] = []

    def add(self, reference_xyxy: np.ndarray, candidate_xyxy: np.ndarray) -> list[tuple[int, int]]:
        """Count one frame's faces; returns the matched pairs (reference i, candidate j)."""
        pairs = match_boxes(reference_xyxy, candidate_xyxy)
        self.reference_faces += len(reference_xyxy)
        self.candidate_faces += len(candidate_xyxy)
        self.matched += len(pairs)
        for i, j in pairs:
            self._errors.append(float(np.max(np.abs(np.asarray(reference_xyxy[i], np.float64)
                                                    - np.asarray(candidate_xyxy[j], np.float64)))))
        return pairs

    def summary(self) -> dict[str, float]:
        """Counts, relative face-count change, and the largest box-corner error
        (pixels) at the 50th/99th percentile and max over matched faces, plus
        the share of matched faces within 1 px."""
        errors = np.asarray(self._errors) if self._errors else np.zeros(1)
        ref = max(self.reference_faces, 1)
        return {
            "reference_faces": self.reference_faces,
            "candidate_faces": self.candidate_faces,
            "matched": self.matched,
            "count_change": (self.candidate_faces - self.reference_faces) / ref,
            "unmatched_share": (self.reference_faces - self.matched + self.candidate_faces - self.matched) / ref,
            "box_err_p50": float(np.percentile(errors, 50)),
            "box_err_p99": float(np.percentile(errors, 99)),
            "box_err_max": float(errors.max()),
            "within_1px": float(np.mean(errors <= 1.0)) if self._errors else 1.0,
        }


def summarise_cosines(cosines: np.ndarray) -> dict[str, float]:
    """Min, 1st percentile and mean of per-face cosines (1.0 each when empty)."""
    c = np.asarray(cosines, np.float64)
    if c.size == 0:
        return {"min": 1.0, "p01": 1.0, "mean": 1.0, "n": 0}
    return {"min": float(c.min()), "p01": float(np.percentile(c, 1)), "mean": float(c.mean()), "n": int(c.size)}
