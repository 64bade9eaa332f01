"""Which file runs for a model at a numeric precision (pure except `resolve_precision`).

``fp32`` runs the user's files as they are. ``int8`` (statically quantized,
QDQ) and ``fp16`` run copies made from them by ``weights/quantize.py`` and
``weights/fp16.py``. A copy is named after the file it was made from and that
file's model id (``det_500m.5e4447f50245.int8.onnx``), so a changed source
file never picks up a stale copy, and the copy has a model id of its own:
records made with it get another analysis id (`Settings.analysis_fingerprint`
hashes model ids), never mixing with the fp32 rows.

Copies live in `Settings.precision_dir`, by default
``$XDG_CACHE_HOME/faceid-jobs/models``: they are derived data, rebuilt by one
command, and the weights folder may be read-only (a link to shared weights).
"""

from __future__ import annotations

import os
from pathlib import Path

from faceid_jobs.errors import ModelError

__all__ = ["DERIVED", "PRECISIONS", "default_precision_dir", "derived_path", "resolve_precision"]

PRECISIONS = ("fp32", "int8", "fp16")
DERIVED = {"int8": "weights/quantize.py (make weights-int8)", "fp16": "weights/fp16.py (make weights-fp16)"}


def default_precision_dir() -> Path:
    """Where int8/fp16 copies go by default: `$XDG_CACHE_HOME/faceid-jobs/models`."""
    base = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return base / "faceid-jobs" / "models"


def precision_folder(precision_dir: str, out: Path | None = None) -> Path:
    """The folder derived copies go to: `out`, else the `precision_dir` setting, else the default."""
    return out or (Path(precision_dir).expanduser() if precision_dir else default_precision_dir())


def derived_path(
    source: str | os.PathLike[str], source_id: str, precision: str, folder: str | os.PathLike[str]
) -> Path:
    """The copy of `source` at `precision` inside `folder`.

    Args:
        source: the fp32 model file.
        source_id: its model id (first 12 hex of its sha256).
        precision: ``"int8"`` or ``"fp16"``.
        folder: the precision folder.

    Example:
        >>> derived_path("w/det_500m.onnx", "5e4447f50245", "int8", "/c").as_posix()
        '/c/det_500m.5e4447f50245.int8.onnx'
    """
    if precision not in PRECISIONS[1:]:
        raise ValueError(f"precision must be int8 or fp16 for a derived file, got {precision!r}")
    return Path(folder) / f"{Path(source).stem}.{source_id}.{precision}.onnx"


def resolve_precision(source: Path, precision: str, folder: str | os.PathLike[str] | None) -> Path:
    """The file to open for `source` at `precision` (the source itself for fp32).

    Raises:
        ModelError: the copy has not been made (the message names the command).
    """
    if precision == "fp32":
        return source
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r} (expected {', '.join(PRECISIONS)})")
    from faceid_jobs.models.runtime import ModelFile

    base = Path(folder).expanduser() if folder else default_precision_dir()
    path = derived_path(source, ModelFile.from_path(source).id, precision, base)
    if not path.is_file():
        raise ModelError(
            f"no {precision} copy of {source.name} in {base} (expected {path.name}); "
            f"make it with {DERIVED[precision]} or use precision fp32"
        )
    return path
