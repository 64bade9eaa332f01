"""Options, settings and error output shared by every command."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from faceid_jobs.config import Settings, load_settings

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML profile (e.g. configs/gpu.toml); env FACEID_JOBS_CONFIG.",
                 rich_help_panel="Settings", show_default=False),
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store folder [default: ./faceid-data]; env FACEID_JOBS_STORE.",
                 rich_help_panel="Settings", show_default=False),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights-dir", help="Folder with the .onnx models; env FACEID_JOBS_WEIGHTS_DIR.",
                 rich_help_panel="Settings", show_default=False),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto | cpu | cuda | tensorrt; env FACEID_JOBS_DEVICE.",
                 rich_help_panel="Settings", show_default=False),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.",
                       rich_help_panel="Output"),
]


def settings_from(config: Path | None, **flags: Any) -> Settings:
    """Settings from defaults, the config file, env and the given flags."""
    if flags.get("weights_dir") is not None:
        flags["weights_dir"] = str(flags["weights_dir"])
    return load_settings(config, flags)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def working(message: str):
    """A spinner with elapsed time on stderr while a long step runs (nothing when not a terminal).

    Example: ``with working("merging records…"): merge(...)``
    """
    import contextlib

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not err.is_terminal:
        return contextlib.nullcontext()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=err, transient=True)
    progress.add_task(message, total=None)
    return progress


def fmt_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s past an hour)."""
    minutes, s = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{s:04.1f}" if hours else f"{minutes:02d}:{s:04.1f}"


def exits_on_user_error(fn):
    """Turn library errors into one line on stderr and the error's exit code."""
    import functools

    from faceid_jobs.errors import FaceIdError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FaceIdError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper
