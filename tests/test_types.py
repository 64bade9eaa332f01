import numpy as np
import pytest

from faceid_jobs.types import Faces


def make(n, frame=0, dim=None):
    return Faces(
        xyxy=np.tile(np.array([[0, 0, 10, 20]], np.float32), (n, 1)),
        score=np.linspace(1, 0.5, n).astype(np.float32),
        kps=np.zeros((n, 5, 2), np.float32),
        frame_idx=np.full(n, frame, np.int64),
        embedding=None if dim is None else np.ones((n, dim), np.float32),
    )


def test_empty_and_len():
    assert len(Faces.empty()) == 0 and Faces.empty().is_empty()
    assert Faces.empty(512).embedding.shape == (0, 512)


@pytest.mark.parametrize(
    ("field", "value"),
    [("xyxy", np.zeros((2, 3), np.float32)), ("score", np.zeros(3, np.float32)),
     ("kps", np.zeros((2, 4, 2), np.float32)), ("liveness", np.zeros(1, np.float32))],
)
def test_shape_validation(field, value):
    with pytest.raises(ValueError, match=field):
        make(2).with_fields(**{field: value})


def test_mask_and_index_selection():
    f = make(4)
    assert len(f[f.score > 0.8]) == 2
    assert len(f[1:3]) == 2 and len(f[[0, 3]]) == 2 and len(f[2]) == 1


def test_merge_keeps_optional_fields_and_refuses_parts_that_disagree():
    merged = Faces.merge([make(2, 0, dim=4), make(3, 1, dim=4)])
    assert len(merged) == 5 and merged.embedding.shape == (5, 4)
    assert Faces.merge([make(2), make(1)]).embedding is None
    assert Faces.merge([make(2, dim=4), Faces.empty(4)]).embedding.shape == (2, 4)
    # One part with embeddings and one without: merging would drop the column silently.
    with pytest.raises(ValueError, match="1 of 2 parts have no embedding"):
        Faces.merge([make(2, dim=4), make(1)])


def test_area():
    assert make(1).area.tolist() == [200.0]
