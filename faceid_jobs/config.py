"""Settings: defaults, TOML profiles, `FACEID_JOBS_<NAME>` env vars, then flags.

Reading files and the environment happens in `load_settings` only; `Settings`
itself is a plain frozen dataclass that the pipeline passes around.
Precedence, lowest first: built-in defaults < TOML file (`--config` or
`FACEID_JOBS_CONFIG`) < environment < explicit overrides (CLI flags).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from faceid_jobs.errors import ConfigError

__all__ = ["DEVICES", "ENV_PREFIX", "Settings", "default_weights_dirs", "load_settings"]

ENV_PREFIX = "FACEID_JOBS_"
DEVICES = ("auto", "cpu", "cuda", "tensorrt")
_FINGERPRINTS = ("sampled", "full")
_ROTATE = ("0", "90", "180", "270", "auto")
# Settings given as strings that a TOML file or an override may give as a number (rotate = 90).
_NUMBER_AS_STR = frozenset({"rotate"})


@dataclass(frozen=True)
class Settings:
    """Every tunable of faceid-jobs. Each field can be set as `FACEID_JOBS_<NAME>`."""

    # Where records, indexes and manifests live: a directory (or s3://bucket/prefix).
    store: str = "./faceid-data"
    # Folder with the .onnx files; empty = FACEID_JOBS_WEIGHTS_DIR, then the defaults.
    weights_dir: str = ""
    # Model files by role; for detector and embedder the first file that exists
    # in weights_dir is used (official name first, then known variants).
    detector: tuple[str, ...] = ("det_500m.onnx",)
    embedder: tuple[str, ...] = ("w600k_mbf.onnx", "w600k_mbf_int8w.onnx")
    # Fused by averaging softmax; empty disables liveness scoring.
    liveness: tuple[str, ...] = ("minifasnet_v2_2.7_80x80.onnx", "minifasnet_v1se_4.0_80x80.onnx")
    device: str = "auto"
    # onnxruntime intra-op threads per session; 0 = one per core.
    threads: int = 0
    # Chunks analysed at once by one process (thread pool); 0 = one per core.
    # Each running chunk holds a model set, a decoder and its queue.
    workers: int = 0
    # A Dask run (--dask-local/--dask-address) whose cluster has had no worker for
    # this many seconds stops with one line (exit 1) instead of waiting forever.
    dask_no_workers_s: float = 60.0
    # Detector input (square side, multiple of 32): larger finds smaller faces, slower.
    det_size: int = 640
    # "fit": detector input sized to the frame (long side det_size, short side to
    # a multiple of 32; 384x640 for 16:9); "square": det_size x det_size as the
    # SCRFD reference pads it (~40 % more detector time on 16:9 video).
    det_shape: str = "fit"
    det_threshold: float = 0.5
    nms_threshold: float = 0.4
    # Faces whose shorter box side is below this many pixels are dropped.
    min_face_px: float = 16.0
    # Frames per second to analyse; 0 = every frame.
    sample_fps: float = 4.0
    chunk_seconds: float = 30.0
    embed_batch: int = 16
    liveness_batch: int = 16
    # A face that continues a nearly unchanged face of the previous sampled frame
    # reuses the embedding and liveness of a face embedded at most this many
    # seconds earlier (pipeline/reuse.py gates); 0 = embed every face.
    reuse_embedding_s: float = 0.5
    # Decoded frames buffered ahead of inference.
    decode_queue: int = 4
    threshold: float = 0.4
    top_k: int = 20
    # How a video's identity is hashed: "sampled" (size + head/tail + 16 blocks) or "full".
    fingerprint: str = "sampled"
    # Key-encryption key: an AWS KMS key id/ARN, else FACEID_JOBS_KEY (base64), else
    # this key file (empty: <config dir>/faceid-jobs/key.json, created on first write).
    kms_key_id: str = ""
    key_file: str = ""
    # Where this client keeps, per store, the newest index version it has seen (rollback
    # detection; outside the store). Empty: $XDG_STATE_HOME (~/.local/state)/faceid-jobs.
    state_dir: str = ""
    # Index shards: exact search up to exact_max vectors, IVF (exact coarse quantizer) above.
    exact_max: int = 200000
    ivf_codec: str = "sq8"
    nprobe: int = 256
    shard_max: int = 500000
    # Local cache of encrypted shards for repeated searches; empty = no cache.
    shard_cache: str = ""

    # Tracks (within a chunk): a face continues a track only if its box overlaps the
    # track's last box (IoU) and its embedding agrees (cosine); a track may skip this
    # many seconds of missed detections. These change the stored track ids.
    track_min_iou: float = 0.2
    track_min_cosine: float = 0.35
    track_max_gap_s: float = 1.0
    # What the index holds: "track" (a few best-quality faces per track) or "face" (all).
    index_by: str = "track"
    # Most vectors per track; a track gets one per track_vector_seconds of its length.
    per_track: int = 3
    track_vector_seconds: float = 2.5
    # Faces (tracks) with P(live) or quality below these are not indexed / not returned
    # by search; 0 = keep all. The records keep every face and its scores.
    min_liveness: float = 0.0
    min_quality: float = 0.0
    # search --require-live refuses a query face whose P(live) is below this.
    live_threshold: float = 0.5
    # Search in track mode joins hits of one video at most this many seconds apart.
    appearance_gap_s: float = 1.0
    # Enrollment: faces are labelled with the best enrolled identity at or above this
    # cosine similarity (and verify matches at it); enrollment photos need this quality.
    identity_threshold: float = 0.4
    enroll_min_quality: float = 0.5
    # People discovery (`faceid-jobs people`, identity/clustering.py): each track is linked
    # to its people_knn nearest tracks at cosine >= people_threshold and the graph is
    # clustered (Chinese whispers); people with fewer than people_min_faces faces are not
    # listed. `people name` enrolls up to people_name_faces best faces (one per track) and
    # refuses when fewer than people_name_min_faces pass the quality and liveness gates.
    people_discover: bool = True  # process (run_archive) adds new tracks to the people after labelling
    people_knn: int = 10
    people_threshold: float = 0.4
    people_min_faces: int = 3
    people_name_faces: int = 8
    people_name_min_faces: int = 3
    # HTTP API (`faceid-jobs api`): bearer token clients must send (set it as
    # FACEID_JOBS_API_TOKEN rather than in a file; never logged or passed to flows),
    # largest request body, model sets serving requests in parallel, and how often
    # to look for a newer index version.
    api_token: str = field(default="", repr=False, metadata={"secret": True})
    api_max_upload_mb: float = 20.0
    api_model_sets: int = 1
    api_index_refresh_s: float = 10.0
    # Photo decoding and API policy (issue 15). An image whose header declares more
    # than max_image_pixels is refused before it is decoded (CLI, API, enrollment);
    # the API decodes at most api_max_decodes images at once, honours
    # require_live=false only with api_allow_no_liveness, never verifies below
    # identity_threshold, and enrolls only with FACEID_JOBS_API_ENROLL_TOKEN
    # (api_enroll_token; the search token cannot enroll).
    max_image_pixels: int = 50_000_000
    # `process` refuses a video whose frames (width × height from the container
    # header) exceed this, before decoding any frame; default 8K UHD.
    max_video_pixels: int = 7680 * 4320
    api_max_decodes: int = 2
    api_allow_no_liveness: bool = False
    api_enroll_token: str = field(default="", repr=False, metadata={"secret": True})

    # Model precision and GPU runtime (issue 14). "fp32" runs the weights as they are;
    # "int8" (statically quantized, QDQ) and "fp16" run copies made by
    # weights/quantize.py / weights/fp16.py into precision_dir (empty:
    # ~/.cache/faceid-jobs/models). Copies have model ids of their own, so the
    # analysis id changes with the precision. On CUDA/TensorRT, io_binding keeps
    # model inputs and outputs in GPU buffers; trt_cache is TensorRT's engine
    # folder (empty: ~/.cache/faceid-jobs/tensorrt).
    precision: str = "fp32"
    precision_dir: str = ""
    io_binding: bool = True
    trt_cache: str = ""

    # Footage (issue 18). Rotation metadata in a video is always applied as it is
    # decoded; rotate turns the decoded frames further, clockwise, for footage
    # that is sideways without saying so: "0", "90", "180", "270", or "auto"
    # (per chunk, the orientation whose first frames show the most upright faces;
    # pipeline/orient.py). Faces are stored in the decoded frame's coordinates
    # whatever the turn. exclude: glob patterns of files a folder walk, glob or S3
    # prefix leaves out (matched against the path relative to the source given and
    # against the file name). fail_on_bad_files: an unreadable video fails the run
    # (exit 1); false lists it in the summary's bad_files and exits 0.
    rotate: str = "0"
    exclude: tuple[str, ...] = ()
    fail_on_bad_files: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in ("fp32", "int8", "fp16"):
            raise ConfigError(f"precision must be fp32, int8 or fp16, got {self.precision!r}")
        if self.rotate not in _ROTATE:
            raise ConfigError(f"rotate must be 0, 90, 180, 270 or auto, got {self.rotate!r}")
        if self.fingerprint not in _FINGERPRINTS:
            raise ConfigError(f"fingerprint must be sampled or full, got {self.fingerprint!r}")
        if self.det_size <= 0 or self.det_size % 32:
            raise ConfigError(f"det_size must be a positive multiple of 32, got {self.det_size}")
        if self.det_shape not in ("fit", "square"):
            raise ConfigError(f"det_shape must be fit or square, got {self.det_shape!r}")
        if self.sample_fps < 0:
            raise ConfigError(f"sample_fps must be >= 0, got {self.sample_fps}")
        if self.chunk_seconds <= 0:
            raise ConfigError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")
        for name in ("embed_batch", "liveness_batch", "decode_queue", "top_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ivf_codec not in ("flat", "sq8", "pq"):
            raise ConfigError(f"ivf_codec must be flat, sq8 or pq, got {self.ivf_codec!r}")
        for name in ("exact_max", "nprobe", "shard_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.dask_no_workers_s <= 0:
            raise ConfigError(f"dask_no_workers_s must be > 0, got {self.dask_no_workers_s}")
        if self.index_by not in ("face", "track"):
            raise ConfigError(f"index_by must be face or track, got {self.index_by!r}")
        if self.per_track < 1:
            raise ConfigError(f"per_track must be >= 1, got {self.per_track}")
        for name in ("track_vector_seconds", "track_max_gap_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.reuse_embedding_s < 0:
            raise ConfigError(f"reuse_embedding_s must be >= 0, got {self.reuse_embedding_s}")
        if self.appearance_gap_s < 0:
            raise ConfigError(f"appearance_gap_s must be >= 0, got {self.appearance_gap_s}")
        for name in ("track_min_iou", "track_min_cosine", "min_liveness", "min_quality", "live_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_image_pixels < 1 or self.max_video_pixels < 1 or self.api_max_decodes < 1:
            raise ConfigError("max_image_pixels, max_video_pixels and api_max_decodes must be >= 1")
        if self.api_max_upload_mb <= 0 or self.api_model_sets < 1 or self.api_index_refresh_s < 0:
            raise ConfigError("api_max_upload_mb must be > 0, api_model_sets >= 1, api_index_refresh_s >= 0")
        if self.people_knn < 1 or self.people_min_faces < 0 or not 1 <= self.people_name_min_faces \
                <= self.people_name_faces:
            raise ConfigError("people_knn must be >= 1, people_min_faces >= 0 and "
                              "1 <= people_name_min_faces <= people_name_faces")
        for name in ("identity_threshold", "enroll_min_quality", "people_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("det_threshold", "nms_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; `None` values are ignored (unset flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def resolved_weights_dir(self) -> Path:
        """The weights folder to use: the setting, else the first default that exists."""
        if self.weights_dir:
            return Path(self.weights_dir).expanduser()
        candidates = default_weights_dirs()
        for c in candidates:
            if c.is_dir():
                return c
        return candidates[0]

    def resolved_key_file(self) -> Path:
        """The key file to use: the setting, else the user's config dir."""
        if self.key_file:
            return Path(self.key_file).expanduser()
        config_home = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser()
        return config_home / "faceid-jobs" / "key.json"

    def resolved_state_dir(self) -> Path:
        """The folder of per-store high-water marks: the setting, else the user's state dir."""
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        state_home = Path(os.environ.get("XDG_STATE_HOME", "~/.local/state")).expanduser()
        return state_home / "faceid-jobs"

    def analysis_fingerprint(self, model_ids: Mapping[str, str]) -> str:
        """Hash of everything that changes the face rows of a video.

        Two runs with the same hash produce the same rows, so a chunk stored
        under it can be skipped; anything else (store, threads, batch sizes)
        only changes speed and is left out.
        """
        relevant = {
            "models": dict(sorted(model_ids.items())),
            "det_size": self.det_size,
            "det_threshold": round(self.det_threshold, 6),
            "nms_threshold": round(self.nms_threshold, 6),
            "min_face_px": round(self.min_face_px, 6),
            "sample_fps": round(self.sample_fps, 6),
            "chunk_seconds": round(self.chunk_seconds, 6),
            # Records carry quality and track ids: their formulas' versions and
            # the tracking thresholds change rows too.
            "quality": 1,
            "tracking": 1,
            "track_min_iou": round(self.track_min_iou, 6),
            "track_min_cosine": round(self.track_min_cosine, 6),
            "track_max_gap_s": round(self.track_max_gap_s, 6),
        }
        if self.det_shape != "square":
            # Left out when square, whose rows are those of earlier versions.
            relevant["det_shape"] = self.det_shape
        if self.reuse_embedding_s > 0:
            # Reused embeddings change rows; the version names the reuse gates.
            # Left out at 0, whose rows are those of a run without reuse.
            relevant["reuse"] = {"version": 1, "max_age_s": round(self.reuse_embedding_s, 6)}
        if self.rotate != "0":
            # Left out at 0, whose rows are those of earlier versions; "auto" carries
            # the version of pipeline/orient.py's rule.
            relevant["rotate"] = "auto/2" if self.rotate == "auto" else self.rotate
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def default_weights_dirs() -> list[Path]:
    """Where weights are looked for when no setting names a folder, in order."""
    data_home = Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")).expanduser()
    repo_weights = Path(__file__).resolve().parent.parent / "weights" / "files"
    return [repo_weights, data_home / "faceid-jobs" / "weights"]


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build `Settings` from defaults, a TOML file, the environment and overrides.

    Args:
        config_file: TOML file whose top-level keys are setting names; when None,
            `FACEID_JOBS_CONFIG` is used if set.
        overrides: explicit values (CLI flags); `None` values are ignored.
        environ: the environment to read (defaults to `os.environ`).

    Raises:
        ConfigError: unknown key, wrong type, unreadable file or invalid value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_read_toml(Path(path)))
    types = _field_types()
    for name, typ in types.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _parse(name, raw, typ)
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in types:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
    return Settings(**{k: _coerce(k, v, types[k]) for k, v in values.items()})


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings)}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    types = _field_types()
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _parse(name: str, raw: str, typ: Any) -> Any:
    """Parse an environment string into the field's type."""
    try:
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if typing.get_origin(typ) is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected {typ.__name__}, got {raw!r}") from None


def _coerce(name: str, value: Any, typ: Any) -> Any:
    """Check a TOML/override value against the field type (ints pass as floats)."""
    if typing.get_origin(typ) is tuple:
        if isinstance(value, str):
            value = [value] if value else []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"setting {name!r} must be a list of strings")
        return tuple(value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if name in _NUMBER_AS_STR and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"setting {name!r} must be {typ.__name__}, got {value!r}")
    return value
