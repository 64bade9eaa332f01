"""SCRFD: pure decode helpers on tiny arrays, the wrapper on a fake graph, then real weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceid_jobs.errors import ModelError
from faceid_jobs.models.runtime import create_session
from faceid_jobs.models.scrfd import (
    SCRFD,
    anchor_centers,
    distance2bbox,
    distance2kps,
    fitted_shape,
    letterbox,
    nms,
)

# ---------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize(
    ("shape", "size", "scale", "filled"),
    [
        ((100, 200), 640, (3.2, 3.2), (320, 640)),  # wide: width fills
        ((200, 100), 640, (3.2, 3.2), (640, 320)),  # tall: height fills
        ((640, 640), 640, (1.0, 1.0), (640, 640)),  # exact fit: no resize
        ((1280, 720), 640, (0.5, 0.5), (640, 360)),  # shrink
        ((3, 5), 32, (6.4, 19 / 3), (19, 32)),  # rounding: per-axis scale
    ],
)
def test_letterbox_places_image_top_left(shape, size, scale, filled):
    image = np.full((*shape, 3), 200, np.uint8)
    canvas, got = letterbox(image, size)
    assert canvas.shape == (size, size, 3)
    assert canvas.dtype == np.uint8
    np.testing.assert_allclose(got, scale)
    fh, fw = filled
    assert (canvas[:fh, :fw] == 200).all()
    assert (canvas[fh:] == 0).all()
    assert (canvas[:, fw:] == 0).all()


def test_letterbox_rejects_grayscale():
    with pytest.raises(ValueError, match="H, W, 3"):
        letterbox(np.zeros((10, 10), np.uint8), 32)


@pytest.mark.parametrize(
    ("h", "w", "stride", "anchors", "expected"),
    [
        (1, 1, 8, 1, [[0, 0]]),
        (1, 2, 8, 2, [[0, 0], [0, 0], [8, 0], [8, 0]]),
        (2, 2, 16, 1, [[0, 0], [16, 0], [0, 16], [16, 16]]),
    ],
)
def test_anchor_centers_row_major_with_repeats(h, w, stride, anchors, expected):
    got = anchor_centers(h, w, stride, anchors)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("point", "dist", "box"),
    [
        ((10, 20), (1, 2, 3, 4), (9, 18, 13, 24)),
        ((0, 0), (0, 0, 0, 0), (0, 0, 0, 0)),
        ((5, 5), (5, 5, 5, 5), (0, 0, 10, 10)),
    ],
)
def test_distance2bbox(point, dist, box):
    got = distance2bbox(np.array([point], float), np.array([dist], float))
    np.testing.assert_allclose(got, [box])


def test_distance2kps_offsets_each_point():
    pts = np.array([[10.0, 20.0], [0.0, 0.0]])
    dist = np.arange(20, dtype=float).reshape(2, 10)
    got = distance2kps(pts, dist)
    assert got.shape == (2, 5, 2)
    np.testing.assert_allclose(got[0, 1], [10 + 2, 20 + 3])
    np.testing.assert_allclose(got[1, 4], [18, 19])


@pytest.mark.parametrize(
    ("boxes", "scores", "thr", "keep"),
    [
        ([], [], 0.4, []),
        ([[0, 0, 10, 10]], [0.5], 0.4, [0]),
        # heavy overlap: the weaker one goes
        ([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7], 0.4, [0, 2]),
        # order is by score, not input order
        ([[20, 20, 30, 30], [0, 0, 10, 10], [1, 1, 10, 10]], [0.7, 0.8, 0.9], 0.4, [2, 0]),
        # IoU exactly 0.5 survives a 0.5 threshold, not a 0.4 one
        ([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], 0.5, [0, 1]),
        ([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], 0.4, [0]),
        # degenerate zero-area boxes do not divide by zero
        ([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], 0.4, [0, 1]),
    ],
)
def test_nms(boxes, scores, thr, keep):
    got = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), thr)
    assert got.dtype == np.int64
    assert got.tolist() == keep


# ---------------------------------------------------------------------------
# The wrapper on a fake graph: outputs found by shape, any order or name


@dataclass
class _Arg:
    name: str
    shape: list


class FakeSCRFDSession:
    """Stands in for onnxruntime: a 64×64 SCRFD with one confident anchor.

    Stride 16, cell (row 1, col 2), first anchor → centre (32, 16) in the
    input; distances 1 (× stride 16) → box (16, 0, 48, 32); landmarks at
    the centre.
    """

    def __init__(self, batch_dim: bool, shuffle: bool, dist: float = 1.0) -> None:
        self.size = 64
        self.dist = dist
        rows = {8: 128, 16: 32, 32: 8}
        self._outputs: list[tuple[str, int, int]] = []  # (name, stride, last dim)
        for last in (1, 4, 10):
            for stride in (8, 16, 32):
                self._outputs.append((f"out{len(self._outputs)}", stride, last))
        if shuffle:
            order = [4, 8, 0, 2, 7, 1, 6, 3, 5]
            self._outputs = [self._outputs[i] for i in order]
        self._rows = rows
        self._batch = batch_dim
        self.last_input: np.ndarray | None = None

    def get_inputs(self):
        return [_Arg("img", [1, 3, "?", "?"])]

    def get_outputs(self):
        def shape(stride, last):
            rows = self._rows[stride]
            return [1, rows, last] if self._batch else [rows, last]

        return [_Arg(name, shape(stride, last)) for name, stride, last in self._outputs]

    def run(self, names, feeds):
        self.last_input = feeds["img"].copy()
        assert feeds["img"].shape == (1, 3, self.size, self.size)
        result = {}
        for name, stride, last in self._outputs:
            a = np.zeros((self._rows[stride], last), np.float32)
            if stride == 16:
                i = (1 * 4 + 2) * 2
                a[i] = 0.9 if last == 1 else (self.dist if last == 4 else 0.0)
            result[name] = a[None] if self._batch else a
        return [result[n] for n in names]


@pytest.mark.parametrize("batch_dim", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_decode_finds_outputs_by_shape(batch_dim, shuffle):
    det = SCRFD(FakeSCRFDSession(batch_dim, shuffle), det_size=64)
    # 128×64 image → letterbox scale 0.5: input box (16, 0, 48, 32) → (32, 0, 96, 64).
    faces = det.detect(np.zeros((64, 128, 3), np.uint8), frame_idx=7)
    assert len(faces) == 1
    np.testing.assert_allclose(faces.xyxy[0], [32, 0, 96, 64])
    np.testing.assert_allclose(faces.kps[0], np.tile([64, 32], (5, 1)))
    np.testing.assert_allclose(faces.score, [0.9], rtol=1e-6)
    assert faces.frame_idx.tolist() == [7]


def test_blob_is_rgb_normalised_and_zero_padded():
    session = FakeSCRFDSession(False, False)
    det = SCRFD(session, det_size=64)
    image = np.zeros((32, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    det.detect(image)
    blob = session.last_input
    np.testing.assert_allclose(blob[0, 2, :32], (255 - 127.5) / 128)  # B is the last channel
    np.testing.assert_allclose(blob[0, 0, :32], -127.5 / 128)
    np.testing.assert_allclose(blob[0, :, 32:], -127.5 / 128)  # zero padding


@pytest.mark.parametrize(
    ("threshold", "min_face_px", "max_faces", "n"),
    [
        (0.5, 0.0, 0, 1),
        (0.95, 0.0, 0, 0),  # below the score threshold
        (0.5, 65.0, 0, 0),  # shorter side is 64 px
        (0.5, 64.0, 0, 1),
        (0.5, 0.0, 1, 1),
    ],
)
def test_filters(threshold, min_face_px, max_faces, n):
    det = SCRFD(FakeSCRFDSession(False, False), det_size=64, threshold=threshold, min_face_px=min_face_px)
    faces = det.detect(np.zeros((64, 128, 3), np.uint8), max_faces=max_faces)
    assert len(faces) == n
    assert faces.kps.shape == (n, 5, 2)


def test_boxes_are_clipped_landmarks_are_not():
    # distances 3 × 16 = 48 around (32, 16): box (-16, -32, 80, 64) on a 64×64 input
    det = SCRFD(FakeSCRFDSession(False, False, dist=3.0), det_size=64)
    faces = det.detect(np.zeros((32, 32, 3), np.uint8))  # scale 2
    np.testing.assert_allclose(faces.xyxy, [[0, 0, 32, 32]])
    np.testing.assert_allclose(faces.kps[0, 0], [16, 8])


def test_detect_many_sets_frame_indices():
    det = SCRFD(FakeSCRFDSession(False, False), det_size=64)
    images = [np.zeros((64, 128, 3), np.uint8)] * 3
    faces = det.detect_many(images, [5, 6, 9])
    assert faces.frame_idx.tolist() == [5, 6, 9]
    assert len(det.detect_many([], [])) == 0
    with pytest.raises(ValueError, match="frame indices"):
        det.detect_many(images, [1])


@pytest.mark.parametrize(
    "shapes",
    [
        [[100, 1], [100, 4]],  # too few outputs
        [[1, 1], [1, 4], [1, 10], [1, 1], [1, 4], [1, 10], [1, 1], [1, 4], [1, 7]],  # bad last dim
    ],
)
def test_unknown_layout_raises(shapes):
    class Session:
        def get_inputs(self):
            return [_Arg("x", [1, 3, "?", "?"])]

        def get_outputs(self):
            return [_Arg(f"o{i}", s) for i, s in enumerate(shapes)]

    with pytest.raises(ModelError, match="SCRFD"):
        SCRFD(Session())


def test_det_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        SCRFD(FakeSCRFDSession(False, False), det_size=100)


# ---------------------------------------------------------------------------
# Real weights

DETECTORS = ["det_500m.onnx", "scrfd_2.5g_bnkps.onnx"]
# Boxes found by both detectors at 640 in people/test/obama_and_biden.jpg. The
# photo also holds a child (bottom right, ~150 px face) that both find too.
BIDEN = (759, 388, 938, 648)
OBAMA = (1141, 358, 1328, 606)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _best_iou(box, boxes) -> float:
    return max((_iou(box, b) for b in boxes), default=0.0)


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request, weights_dir: Path) -> SCRFD:
    return SCRFD(create_session(weights_dir / request.param, "cpu"))


@pytest.fixture(scope="module")
def obama_biden(media_dir: Path) -> np.ndarray:
    return cv2.imread(str(media_dir / "people" / "test" / "obama_and_biden.jpg"))


@pytest.mark.models
def test_one_face_per_portrait_with_landmarks_inside(detector, portraits):
    assert len(portraits) == 6
    for name, path in portraits.items():
        faces = detector.detect(cv2.imread(str(path)))
        assert len(faces) == 1, name
        x1, y1, x2, y2 = faces.xyxy[0]
        kx, ky = faces.kps[0, :, 0], faces.kps[0, :, 1]
        assert ((kx > x1) & (kx < x2) & (ky > y1) & (ky < y2)).all(), name
        # eyes above the mouth, left eye left of the right eye (image left/right)
        assert faces.kps[0, 0, 0] < faces.kps[0, 1, 0], name
        assert faces.kps[0, :2, 1].max() < faces.kps[0, 3:, 1].min(), name
        assert faces.score[0] > 0.7


@pytest.mark.models
def test_two_people_photo(detector, obama_biden):
    faces = detector.detect(obama_biden)
    assert len(faces) >= 2
    assert (np.diff(faces.score) <= 0).all()  # sorted by score
    biggest = faces.xyxy[np.argsort(-faces.area)[:2]]
    assert _best_iou(BIDEN, biggest) > 0.85
    assert _best_iou(OBAMA, biggest) > 0.85


@pytest.mark.models
@pytest.mark.parametrize("size", [320, 480])
def test_other_input_sizes(detector, obama_biden, size):
    det = SCRFD(detector.session, det_size=size)
    faces = det.detect(obama_biden)
    assert _best_iou(BIDEN, faces.xyxy) > 0.75
    assert _best_iou(OBAMA, faces.xyxy) > 0.75


@pytest.mark.models
def test_transposed_image_maps_back(detector, obama_biden):
    # Transposing also lays the faces on their side, and the network is not
    # rotation-equivariant, so boxes agree to IoU ~0.85-0.9, not to pixels.
    faces = detector.detect(np.ascontiguousarray(obama_biden.transpose(1, 0, 2)))
    back = faces.xyxy[:, [1, 0, 3, 2]]
    assert _best_iou(BIDEN, back) > 0.75
    assert _best_iou(OBAMA, back) > 0.75
    assert ((back[:, 2] <= obama_biden.shape[1]) & (back[:, 3] <= obama_biden.shape[0])).all()


@pytest.mark.models
def test_padding_shifts_boxes_exactly(detector, portraits):
    """At letterbox scale 1 and a 32-px-aligned shift the network sees the same
    pixels moved by whole cells, so boxes must move by exactly the padding."""
    dx, dy = 96, 64
    for name, path in portraits.items():
        image = cv2.imread(str(path))
        r = 512 / max(image.shape[:2])
        small = cv2.resize(image, None, fx=r, fy=r, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        base = cv2.copyMakeBorder(small, 0, 640 - h, 0, 640 - w, cv2.BORDER_CONSTANT, value=0)
        moved = cv2.copyMakeBorder(small, dy, 640 - h - dy, dx, 640 - w - dx, cv2.BORDER_CONSTANT, value=0)
        a, b = detector.detect(base), detector.detect(moved)
        assert len(a) == len(b) == 1, name
        np.testing.assert_allclose(b.xyxy - a.xyxy, [[dx, dy, dx, dy]], atol=2.0, err_msg=name)
        np.testing.assert_allclose(b.kps - a.kps, np.tile([dx, dy], (1, 5, 1)), atol=3.0, err_msg=name)


@pytest.mark.models
def test_padding_100_left_50_top(detector, portraits):
    """Padding that changes the letterbox scale: boxes follow within 3% of the face size."""
    for name, path in portraits.items():
        image = cv2.imread(str(path))
        padded = cv2.copyMakeBorder(image, 50, 0, 100, 0, cv2.BORDER_CONSTANT, value=0)
        a, b = detector.detect(image), detector.detect(padded)
        assert len(a) == len(b) == 1, name
        side = float(min(a.xyxy[0, 2:] - a.xyxy[0, :2]))
        np.testing.assert_allclose(b.xyxy - a.xyxy, [[100, 50, 100, 50]], atol=0.03 * side, err_msg=name)


@pytest.mark.models
def test_detect_many_matches_detect(weights_dir, portraits):
    det = SCRFD(create_session(weights_dir / "det_500m.onnx", "cpu"), det_size=320)
    images = [cv2.imread(str(p)) for p in list(portraits.values())[:3]]
    many = det.detect_many(images, [10, 20, 30])
    singles = [det.detect(img, i) for img, i in zip(images, [10, 20, 30], strict=True)]
    assert many.frame_idx.tolist() == [10, 20, 30]
    np.testing.assert_allclose(many.xyxy, np.concatenate([s.xyxy for s in singles]), atol=1e-4)


def test_fitted_shape_pads_the_short_side_to_32():
    assert fitted_shape(720, 1280, 640) == (384, 640)
    assert fitted_shape(1280, 720, 640) == (640, 384)
    assert fitted_shape(100, 100, 640) == (640, 640)
    assert fitted_shape(1, 1000, 320) == (32, 320)


def test_fit_input_finds_the_same_faces_on_video(detector, friends_clip):
    """The frame-sized input (384×640 for this 16:9 clip) sees the same image at the same
    scale as the square one, only without 256 rows of padding: the same faces, boxes within
    1 px (a face or two near the score threshold may differ over the whole clip)."""
    import cv2

    fit = SCRFD(detector.session, det_size=640, fit=True, min_face_px=16)
    square = SCRFD(detector.session, det_size=640, fit=False, min_face_px=16)
    cap = cv2.VideoCapture(str(friends_clip))
    diffs, counted = [], 0
    for i in range(0, 600, 40):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok
        a, b = square.detect(frame, i), fit.detect(frame, i)
        assert fit._canvas.shape == (384, 640, 3) and fit._blob.shape == (1, 3, 384, 640)
        assert len(a) == len(b), f"frame {i}: {len(a)} faces square, {len(b)} fitted"
        for box in a.xyxy:
            j = int(np.argmax([_iou(box, other) for other in b.xyxy]))
            diffs.append(float(np.abs(box - b.xyxy[j]).max()))
        counted += len(a)
    cap.release()
    assert counted >= 20
    assert np.mean(np.asarray(diffs) <= 1.0) >= 0.95
    # A photo of another shape switches buffers and back.
    photo = np.zeros((500, 300, 3), np.uint8)
    fit.detect(photo)
    assert fit._canvas.shape == (640, 384, 3)
