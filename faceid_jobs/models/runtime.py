"""The one place that creates onnxruntime sessions (I/O: reads model files, probes drivers).

Execution providers are chosen from `Settings.device`:

- ``cpu``: CPUExecutionProvider only.
- ``cuda``: CUDA with CPU fallback for unsupported nodes; raises `ModelError`
  when CUDA cannot really be used.
- ``tensorrt``: TensorRT (engine cache on disk) + CUDA + CPU; raises when the
  TensorRT or CUDA provider cannot be loaded. Only used when asked for.
- ``auto``: CUDA when it really works, else CPU, silently.

onnxruntime-gpu lists CUDA among its "available" providers whether or not the
machine has a GPU, CUDA 13 and cuDNN 9; asked for it anyway it prints an error
and falls back to CPU. So before asking we probe, quietly, once per process:
the provider is built in, the driver reports a device, and the provider
library (with the CUDA libraries it links) and cuDNN load.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from faceid_jobs.errors import ModelError

__all__ = [
    "ModelFile",
    "SessionRunner",
    "available_providers",
    "binding_device",
    "choose_providers",
    "create_session",
    "cuda_status",
    "file_sha256",
]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

# onnxruntime logging: 3 = errors only (hides w600k's "batch dims differ"
# warning), 4 = fatal only (used while a GPU provider may fail to load).
_LOG_ERROR = 3
_LOG_FATAL = 4
_ORT_LOGGER_LOCK = threading.Lock()

Provider = str | tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class ModelFile:
    """Identity of one model file, recorded with every result.

    Attributes:
        path: absolute path of the file.
        sha256: hex sha256 of the file's bytes.
        id: the first 12 hex digits of `sha256` (what results and logs show).
        size: size in bytes.
    """

    path: Path
    sha256: str
    id: str
    size: int

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> ModelFile:
        """Hash a model file (streamed, cached per path/size/mtime).

        Raises:
            ModelError: the file is missing or unreadable.
        """
        p = Path(path).resolve()
        digest = file_sha256(p)
        return cls(path=p, sha256=digest, id=digest[:12], size=p.stat().st_size)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; cached by (path, size, mtime).

    Raises:
        ModelError: the file is missing or unreadable.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelError(f"model file {p} not found") from None
    except OSError as exc:
        raise ModelError(f"model file {p}: cannot read ({exc.strerror or exc})") from None
    return _sha256_cached(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ModelError(f"model file {path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


def default_trt_cache_dir() -> Path:
    """Where TensorRT engines are cached: `$XDG_CACHE_HOME/faceid-jobs/tensorrt`."""
    base = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return base / "faceid-jobs" / "tensorrt"


def choose_providers(
    device: str,
    *,
    trt_cache_dir: str | os.PathLike[str] | None = None,
    trt_fp16: bool = False,
    trt_shapes: tuple[str, str, str] | None = None,
) -> list[Provider]:
    """Execution providers for a device setting, checked against this machine.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt``.
        trt_cache_dir: engine cache folder for ``tensorrt`` (default
            `default_trt_cache_dir()`); created when needed.
        trt_fp16: let TensorRT build fp16 kernels.
        trt_shapes: TensorRT optimisation profile ``(min, opt, max)`` input
            shapes (``"input.1:1x3x112x112"``): one engine serves every batch
            size in the range instead of a rebuild per new shape.

    Returns:
        Provider names (or ``(name, options)`` pairs) in priority order, for
        `onnxruntime.InferenceSession(providers=...)`.

    Raises:
        ModelError: ``cuda``/``tensorrt`` was asked for and cannot be used, or
            the device name is unknown.

    Example:
        >>> choose_providers("cpu")
        ['CPUExecutionProvider']
    """
    if device == "cpu":
        return [CPU]
    if device == "auto":
        ok, reason = cuda_status()
        if ok:
            return [CUDA, CPU]
        log.debug("device auto: using CPU (%s)", reason)
        return [CPU]
    if device == "cuda":
        ok, reason = cuda_status()
        if not ok:
            raise ModelError(f"device cuda: CUDA cannot be used here ({reason}); use --device cpu")
        return [CUDA, CPU]
    if device == "tensorrt":
        ok, reason = cuda_status()
        if ok:
            ok, reason = _tensorrt_status()
        if not ok:
            raise ModelError(
                f"device tensorrt: TensorRT cannot be used here ({reason}); use --device cuda or cpu"
            )
        cache = Path(trt_cache_dir) if trt_cache_dir else default_trt_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(
                f"device tensorrt: cannot create engine cache {cache} ({exc.strerror})"
            ) from None
        trt_options = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": bool(trt_fp16),
        }
        if trt_shapes is not None:
            trt_options.update(zip(("trt_profile_min_shapes", "trt_profile_opt_shapes",
                                    "trt_profile_max_shapes"), trt_shapes, strict=True))
        return [(TENSORRT, trt_options), CUDA, CPU]
    raise ModelError(f"unknown device {device!r} (expected auto, cpu, cuda or tensorrt)")


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers (not all may load)."""
    return list(ort.get_available_providers())


def default_threads() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def create_session(
    path: str | os.PathLike[str],
    device: str = "auto",
    threads: int = 0,
    *,
    spin: bool = False,
    trt_cache_dir: str | os.PathLike[str] | None = None,
    trt_fp16: bool = False,
    trt_shapes: tuple[str, str, str] | None = None,
) -> ort.InferenceSession:
    """Open an ONNX model on the chosen device.

    Args:
        path: the ``.onnx`` file.
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (see `choose_providers`).
        threads: intra-op threads; 0 = one per available core. Inter-op is 1.
        spin: let idle worker threads busy-wait for the next run. Off by
            default: a pipeline alternates several sessions (detector,
            embedder, two liveness models), and one session's spinning
            threads steal the cores the next one needs (measured on 2 cores:
            detect + embed + liveness 150 ms per frame with spinning, 60 without).
        trt_cache_dir, trt_fp16, trt_shapes: TensorRT options (see `choose_providers`).

    Returns:
        A ready `onnxruntime.InferenceSession` (all graph optimisations,
        onnxruntime logging at errors only).

    Raises:
        ModelError: the file is missing, unreadable or not an ONNX model, or
            the device cannot be used.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} not found")
    if not os.access(p, os.R_OK):
        raise ModelError(f"model file {p}: cannot read (permission denied)")
    if threads < 0:
        raise ModelError(f"threads must be >= 0, got {threads}")
    providers = choose_providers(device, trt_cache_dir=trt_cache_dir, trt_fp16=trt_fp16, trt_shapes=trt_shapes)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = _LOG_ERROR
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if _shared_cpu_arena():
        options.add_session_config_entry("session.use_env_allocators", "1")
    gpu = providers != [CPU]
    if not gpu:
        # A memory pattern is one block planned per input shape and kept; batches
        # of faces come in every size (each chunk's last one), so the blocks pile
        # up. Without it tensors come from the shared arena and are reused:
        # measured 55 MB less for one running chunk and 115 MB less for two, at
        # the same speed.
        options.enable_mem_pattern = False
    try:
        with _quiet_ort(gpu):
            session = ort.InferenceSession(str(p), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ModelError(f"model file {p}: cannot load as ONNX ({_first_line(exc)})") from None
    used = session.get_providers()
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in used:
        if device == "auto":
            _mark_cuda_broken(f"{wanted} failed to initialise")
            log.info("device auto: %s failed to initialise, using %s", wanted, used)
        else:
            raise ModelError(
                f"device {device}: {wanted} failed to initialise for {p.name} "
                f"(needs CUDA 13 and cuDNN 9); use --device cpu"
            )
    log.debug("opened %s on %s with %d threads", p.name, used, options.intra_op_num_threads)
    return session


class SessionRunner:
    """Runs a one-input session, plainly or through IO binding with device buffers.

    With ``device="cuda"`` the input is copied into an `OrtValue` kept on the
    GPU (one per input shape, reused frame after frame: no allocation and no
    pageable staging copy per call) and the outputs are left on the GPU by
    onnxruntime, then copied back in one step; the session never synchronises
    a host buffer it was handed. ``device="cpu"`` does the same with CPU
    buffers (no gain; it lets the path run and be tested without a GPU).
    None: `session.run`, what the CPU pipeline uses.

    Not thread-safe: one runner per session, one caller at a time (each
    running chunk has its own model set).

    Args:
        session: an onnxruntime session (or anything with `run` when device is None).
        device: ``"cuda"``, ``"cpu"`` or None.
    """

    _KEEP_SHAPES = 4

    def __init__(self, session: Any, device: str | None = None) -> None:
        if device not in (None, "cuda", "cpu"):
            raise ValueError(f"io_binding device must be cuda, cpu or None, got {device!r}")
        self.session = session
        self.device = device
        self._binding = session.io_binding() if device else None
        self._inputs: dict[tuple[tuple[int, ...], str], Any] = {}

    def run(self, output_names: list[str], input_name: str, array: np.ndarray) -> list[np.ndarray]:
        """Outputs (host numpy arrays, in `output_names` order) for one input array."""
        if self._binding is None:
            return self.session.run(output_names, {input_name: array})
        array = np.ascontiguousarray(array)
        key = (array.shape, array.dtype.str)
        value = self._inputs.pop(key, None)
        if value is None:
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, array.dtype, self.device, 0)
        self._inputs[key] = value  # most recent last; batches of every size at a chunk's end
        while len(self._inputs) > self._KEEP_SHAPES:
            del self._inputs[next(iter(self._inputs))]
        value.update_inplace(array)
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        binding.bind_ortvalue_input(input_name, value)
        for name in output_names:
            binding.bind_output(name, self.device, 0)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


def binding_device(session: Any, enabled: bool = True) -> str | None:
    """The IO-binding device for a session: ``"cuda"`` when it runs on CUDA or
    TensorRT and `enabled`, else None (plain runs on CPU)."""
    providers = session.get_providers() if hasattr(session, "get_providers") else []
    return "cuda" if enabled and providers and providers[0] in (CUDA, TENSORRT) else None


_ARENA_LOCK = threading.Lock()
_ARENA: list[bool] = []


def _shared_cpu_arena() -> bool:
    """One CPU memory arena for every session of this process, grown only as asked.

    By default each session keeps its own arena, grown in powers of two and
    never shrunk, so a process holds the peak of every model (detector,
    embedder, two liveness models) of every model set at once: about 250 MB
    per set with batches of 16, which made a long video (two chunks, two
    sets) peak 1.7× higher than a short one. The models of a chunk run one
    after another, so one shared arena only needs the largest concurrent
    demand (measured: +107 MB instead of +243 MB for one set, same speed).
    Registered once per process; False (per-session arenas) if onnxruntime
    refuses, which changes memory, never results.
    """
    with _ARENA_LOCK:
        if not _ARENA:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                # max_mem 0 = no cap; strategy 1 = kSameAsRequested; -1 = defaults
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
                _ARENA.append(True)
            except Exception as exc:  # an onnxruntime build without it: keep the defaults
                log.debug("shared CPU arena unavailable: %s", _first_line(exc))
                _ARENA.append(False)
        return _ARENA[0]


@contextlib.contextmanager
def _quiet_ort(gpu: bool):
    """Raise onnxruntime's process-wide log level while a session is created."""
    with _ORT_LOGGER_LOCK:
        ort.set_default_logger_severity(_LOG_FATAL if gpu else _LOG_ERROR)
        try:
            yield
        finally:
            ort.set_default_logger_severity(_LOG_ERROR)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


# ---------------------------------------------------------------------------
# CUDA / TensorRT probes (cached per process)

_cuda_override: list[str] = []


def _mark_cuda_broken(reason: str) -> None:
    if not _cuda_override:
        _cuda_override.append(reason)


def cuda_status() -> tuple[bool, str]:
    """Whether onnxruntime's CUDA provider can really run here, and why not.

    The probe is silent and its result cached for the process: the provider is
    built into this onnxruntime, the NVIDIA driver reports at least one device,
    the provider library loads with the CUDA libraries it links against, and
    cuDNN 9 loads.

    Returns:
        ``(True, "ok")`` or ``(False, reason)``.
    """
    if _cuda_override:
        return False, _cuda_override[0]
    return _probe_cuda()


@functools.cache
def _probe_cuda() -> tuple[bool, str]:
    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider"
    count = _cuda_device_count()
    if count is None:
        return False, "no NVIDIA driver (libcuda) found"
    if count == 0:
        return False, "the NVIDIA driver reports no GPU"
    _preload_pip_cuda_libraries()
    ok, reason = _load_library(_provider_library("cuda"))
    if not ok:
        return False, f"CUDA provider library does not load: {reason} (needs CUDA 13)"
    if sys.platform.startswith("linux"):
        ok, reason = _load_library("libcudnn.so.9")
        if not ok:
            return False, "cuDNN 9 (libcudnn.so.9) not found"
    return True, "ok"


@functools.cache
def _tensorrt_status() -> tuple[bool, str]:
    if TENSORRT not in ort.get_available_providers():
        return False, "this onnxruntime build has no TensorRT provider"
    ok, reason = _load_library(_provider_library("tensorrt"))
    if not ok:
        return False, f"TensorRT provider library does not load: {reason}"
    return True, "ok"


def _cuda_device_count() -> int | None:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return count.value
    return None


def _provider_library(kind: str) -> str:
    capi = Path(ort.__file__).resolve().parent / "capi"
    if sys.platform == "win32":
        return str(capi / f"onnxruntime_providers_{kind}.dll")
    return str(capi / f"libonnxruntime_providers_{kind}.so")


def _load_library(name: str) -> tuple[bool, str]:
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        return False, _first_line(exc)
    return True, "ok"


def _preload_pip_cuda_libraries() -> None:
    """Load CUDA/cuDNN from NVIDIA's pip wheels when present (they are not on the
    library path); onnxruntime's helper prints, so its output goes to the log."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or importlib.util.find_spec("nvidia") is None:
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            preload()
    except Exception as exc:  # best effort: the probe that follows decides
        log.debug("onnxruntime.preload_dlls failed: %s", _first_line(exc))
    if buffer.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", buffer.getvalue().strip())
