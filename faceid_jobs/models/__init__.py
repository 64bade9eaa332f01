"""The ONNX models faceid-jobs runs, and `load_models` to open the configured set (I/O).

One small wrapper per model, each around an injected onnxruntime session:
`SCRFD` (detector), `ArcFace` (embedder), `MiniFASNet` fused by
`LivenessFusion` (liveness). Alignment is the pure `align_faces`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from faceid_jobs.config import Settings
from faceid_jobs.errors import ModelError
from faceid_jobs.models.align import align_faces, similarity_transform
from faceid_jobs.models.arcface import ArcFace
from faceid_jobs.models.minifasnet import LivenessFusion, MiniFASNet, liveness_crop_box
from faceid_jobs.models.precision import resolve_precision
from faceid_jobs.models.router import load_model
from faceid_jobs.models.runtime import ModelFile
from faceid_jobs.models.scrfd import SCRFD

__all__ = [
    "SCRFD",
    "ArcFace",
    "LivenessFusion",
    "MiniFASNet",
    "ModelFile",
    "ModelSet",
    "align_faces",
    "describe_models",
    "embedder_id",
    "liveness_crop_box",
    "load_model",
    "load_models",
    "model_ids",
    "model_paths",
    "resolve_model_path",
    "similarity_transform",
]

log = logging.getLogger(__name__)

_M = TypeVar("_M")


@dataclass(frozen=True)
class ModelSet:
    """The loaded models of one configuration.

    Attributes:
        detector: the face detector.
        embedder: the face embedder.
        liveness: fused liveness models, or None when liveness is disabled.
        files: model file identities keyed ``"detector"``, ``"embedder"``,
            ``"liveness0"``, ``"liveness1"``, ...
        providers: execution providers the detector session actually uses.
    """

    detector: SCRFD
    embedder: ArcFace
    liveness: LivenessFusion | None
    files: dict[str, ModelFile] = field(default_factory=dict)
    providers: list[str] = field(default_factory=list)

    @property
    def ids(self) -> dict[str, str]:
        """Role → 12-hex model id, e.g. ``{"detector": "5e4447f50245", ...}``."""
        return {role: f.id for role, f in self.files.items()}

    @property
    def liveness_id(self) -> str | None:
        """Ids of the fused liveness models joined by "+", or None without liveness."""
        ids = [f.id for role, f in sorted(self.files.items()) if role.startswith("liveness")]
        return "+".join(ids) if ids and self.liveness is not None else None


def describe_models(models: ModelSet) -> list[dict[str, object]]:
    """Per model file: role, file, sha256, size and the graph's inputs/outputs (for `doctor`)."""
    sessions = {"detector": models.detector.session, "embedder": models.embedder.session}
    if models.liveness is not None:
        for i, m in enumerate(models.liveness.models):
            sessions[f"liveness{i}"] = m.session
    rows = []
    for role, f in models.files.items():
        session = sessions.get(role)
        rows.append({
            "role": role,
            "file": str(f.path),
            "sha256": f.sha256,
            "size": f.size,
            "inputs": [f"{i.name} {list(i.shape)}" for i in session.get_inputs()] if session else [],
            "outputs": [f"{o.name} {list(o.shape)}" for o in session.get_outputs()] if session else [],
        })
    return rows


def _locate(folder: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def _resolve(folder: Path, names: str | Sequence[str], role: str) -> Path:
    """The first candidate file that exists, or a one-line `ModelError`."""
    candidates = [names] if isinstance(names, str) else list(names)
    if not candidates:
        raise ModelError(f"no {role} model file configured")
    for name in candidates:
        path = _locate(folder, name)
        if path.is_file():
            return path
    first = _locate(folder, candidates[0])
    if len(candidates) == 1:
        what = f"{first.name} not found"
    else:
        what = "none of " + ", ".join(Path(n).name for n in candidates) + " found"
    raise ModelError(f"{what} in {first.parent} (set FACEID_JOBS_WEIGHTS_DIR or run `make weights`)")


def resolve_model_path(settings: Settings, role: str) -> Path:
    """The file `load_models` would use for "detector" or "embedder", without loading it."""
    return _resolve(settings.resolved_weights_dir(), getattr(settings, role), role)


def embedder_id(settings: Settings) -> str:
    """Model id of the configured embedder, from its file alone (no session is opened): the id
    `ModelSet.ids["embedder"]` would give, for commands that need it without running the model.

    Raises:
        ModelError: none of the configured embedder files exists.
    """
    return model_ids(settings, liveness=False)["embedder"]


def model_paths(settings: Settings, *, liveness: bool = True) -> dict[str, Path]:
    """Role → the file `load_models` runs: "detector", "embedder", "liveness0", … (int8/fp16
    derived copies when `precision` asks for them; their ids enter the analysis id).

    Raises:
        ModelError: a configured file (or its derived copy) is missing.
    """
    folder = settings.resolved_weights_dir()
    paths = {
        "detector": _resolve(folder, settings.detector, "detector"),
        "embedder": _resolve(folder, settings.embedder, "embedder"),
    }
    for i, name in enumerate(settings.liveness if liveness else ()):
        paths[f"liveness{i}"] = _resolve(folder, name, "liveness")
    return {role: resolve_precision(p, settings.precision, settings.precision_dir) for role, p in paths.items()}


def model_ids(settings: Settings, *, liveness: bool = True) -> dict[str, str]:
    """`ModelSet.ids` of the set `load_models` would load, from the files alone (no session
    is opened): what names an analysis, known before any model runs."""
    return {role: ModelFile.from_path(path).id for role, path in model_paths(settings, liveness=liveness).items()}


def _typed(cls: type[_M], model: object) -> _M:
    """Narrow a routed model to the class its role needs (the router already checked)."""
    if not isinstance(model, cls):
        raise ModelError(f"expected a {cls.__name__}, got {type(model).__name__}")
    return model


def _source_name(settings: Settings, index: int) -> str:
    """The configured liveness file name (its crop scale is in it; a derived copy keeps its stem)."""
    return Path(settings.liveness[index]).name


def load_models(settings: Settings, *, liveness: bool = True) -> ModelSet:
    """Open the detector, embedder and liveness models named in the settings.

    Names are resolved under `settings.resolved_weights_dir()` (an absolute
    name is used as is); for the detector and the embedder the first listed
    file that exists is used, every liveness file is required. Each file is
    opened once on `settings.device`.

    Args:
        settings: uses weights_dir, detector, embedder, liveness, device,
            threads, det_size, det_threshold, nms_threshold, min_face_px,
            precision (+ precision_dir), io_binding, trt_cache and the batch sizes.
        liveness: also load the liveness models (search does not need them).

    Returns:
        A `ModelSet` with file hashes for the analysis fingerprint.

    Raises:
        ModelError: a file is missing, not ONNX, or not the kind of model its
            role needs; the device cannot be used.

    Example:
        >>> models = load_models(Settings(device="cpu"))  # doctest: +SKIP
        >>> models.ids["detector"]  # doctest: +SKIP
        '5e4447f50245'
    """
    paths = model_paths(settings, liveness=liveness)
    common = {
        "device": settings.device,
        "threads": settings.threads,
        "io_binding": settings.io_binding,
        "trt_cache_dir": settings.trt_cache or None,
        "trt_fp16": settings.precision == "fp16",
    }
    detector = _typed(
        SCRFD,
        load_model(
            paths["detector"],
            expect="detector",
            det_size=settings.det_size,
            fit=settings.det_shape == "fit",
            threshold=settings.det_threshold,
            nms_threshold=settings.nms_threshold,
            min_face_px=settings.min_face_px,
            **common,
        ),
    )
    embedder = _typed(ArcFace, load_model(paths["embedder"], expect="embedder",
                                          max_batch=settings.embed_batch, **common))
    liveness_models = [
        _typed(MiniFASNet, load_model(paths[f"liveness{i}"], expect="liveness", max_batch=settings.liveness_batch,
                                      name=_source_name(settings, i), **common))
        for i in range(len(paths) - 2)
    ]
    files = {role: ModelFile.from_path(p) for role, p in paths.items()}
    providers = list(detector.session.get_providers())
    log.info(
        "models loaded on %s: %s",
        providers[0] if providers else "?",
        ", ".join(f"{role}={p.name}@{files[role].id}" for role, p in paths.items()),
    )
    return ModelSet(
        detector=detector,
        embedder=embedder,
        liveness=LivenessFusion(liveness_models) if liveness_models else None,
        files=files,
        providers=providers,
    )
