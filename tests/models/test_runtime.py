"""Runtime: provider choice, quiet CUDA probing, session options, model file identity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from faceid_jobs.errors import ModelError
from faceid_jobs.models import runtime
from faceid_jobs.models.runtime import (
    CPU,
    ModelFile,
    choose_providers,
    create_session,
    cuda_status,
    file_sha256,
)

DET_500M_SHA256 = "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a"

needs_no_cuda = pytest.mark.skipif(cuda_status()[0], reason="this machine can run CUDA")


def test_cpu_providers():
    assert choose_providers("cpu") == [CPU]


@needs_no_cuda
def test_auto_on_cpu_machine_is_cpu():
    assert choose_providers("auto") == [CPU]


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_gpu_device_without_gpu_raises(device):
    with pytest.raises(ModelError, match=f"device {device}"):
        choose_providers(device)


def test_unknown_device():
    with pytest.raises(ModelError, match="unknown device"):
        choose_providers("tpu")


@pytest.mark.models
def test_cpu_session(weights_dir: Path):
    session = create_session(weights_dir / "det_500m.onnx", device="cpu", threads=1)
    assert session.get_providers() == [CPU]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1


@pytest.mark.models
def test_threads_zero_means_all_cores(weights_dir: Path):
    session = create_session(weights_dir / "det_500m.onnx", device="cpu")
    assert session.get_session_options().intra_op_num_threads == runtime.default_threads()


@needs_no_cuda
@pytest.mark.models
def test_auto_is_silent_on_a_cpu_machine(weights_dir: Path, capfd):
    runtime._probe_cuda.cache_clear()  # probe again, inside the capture
    session = create_session(weights_dir / "det_500m.onnx", device="auto")
    # w600k's "batch dims differ" warning must not be printed either
    create_session(weights_dir / "w600k_mbf_int8w.onnx", device="auto")
    assert session.get_providers() == [CPU]
    out, err = capfd.readouterr()
    assert err == ""
    assert out == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all\n", "cannot load as ONNX"),
        (b"", "cannot load as ONNX"),
        (None, "not found"),
    ],
)
def test_bad_model_file_names_the_file(tmp_path: Path, content, message):
    path = tmp_path / "junk.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        create_session(path, device="cpu")
    assert "junk.onnx" in str(info.value)
    assert "\n" not in str(info.value)


def test_sha256_streamed_and_cached(tmp_path: Path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"a" * (3 << 20))
    assert file_sha256(path) == hashlib.sha256(b"a" * (3 << 20)).hexdigest()
    path.write_bytes(b"b" * 10)  # new size and mtime: hashed again
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == hashlib.sha256(b"b" * 10).hexdigest()
    with pytest.raises(ModelError, match=r"gone\.onnx"):
        file_sha256(tmp_path / "gone.onnx")


@pytest.mark.models
def test_model_file_identity(weights_dir: Path):
    mf = ModelFile.from_path(weights_dir / "det_500m.onnx")
    assert mf.sha256 == DET_500M_SHA256
    assert mf.id == DET_500M_SHA256[:12]
    assert mf.size == (weights_dir / "det_500m.onnx").stat().st_size
    assert mf.path.is_absolute()


def test_sessions_share_one_cpu_arena(weights_dir: Path):
    """Every CPU session of a process allocates from one arena registered once,
    so a second model set does not add a second set of per-model arenas."""
    import numpy as np

    assert runtime._shared_cpu_arena() is True
    assert runtime._shared_cpu_arena() is True  # registering again would raise inside onnxruntime
    sessions = [create_session(weights_dir / "det_500m.onnx", "cpu", threads=1) for _ in range(2)]
    x = np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)
    outs = [s.run(None, {s.get_inputs()[0].name: x}) for s in sessions]
    assert len(outs[0]) == 9
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, b)
