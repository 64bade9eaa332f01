"""What every command shares: its common options, output, logging and error handling.

A command is a function decorated with `command(...)`: it declares only its own
options plus one parameter `opts: Opts`, and the decorator adds the shared ones
(`--store`, `--weights-dir`, `--device`, `--config`, `--json`, `-q`, `-v`) to the
signature Typer reads, so they are declared once and still go after the
subcommand (`faceid-jobs search x.jpg --store DIR`).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from faceid_jobs.cli.stop import Stop
from faceid_jobs.config import DEVICES, Settings, load_settings
from faceid_jobs.errors import FaceIdError
from faceid_jobs.text import printable

# Version of every `--json` object's layout (its "schema" field).
JSON_SCHEMA = 1


def _console(stderr: bool = False) -> Console:
    # Pipes and files get whole lines: no hard wrapping at an assumed 80 columns.
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 1 << 14
    return console


out = _console()
err = _console(stderr=True)


def shown(value: object) -> str:
    """A string someone else controls (file name, URI, identity name, store content), ready to go
    into Rich markup: one line, control characters as escapes, markup brackets escaped.

    Every such string printed by a command goes through here (table cells, titles, progress
    descriptions, messages); library log lines go through `printable` in the log formatter.
    """
    return escape(printable(value))


def _complete_device(incomplete: str) -> list[str]:
    return [d for d in DEVICES if d.startswith(incomplete)]


def complete_identity(ctx: typer.Context, incomplete: str) -> list[str]:
    """Enrolled names for shell completion (from the --store/--config typed so far, else env and defaults);
    nothing when the gallery cannot be read (no key, no store)."""
    try:
        from faceid_jobs.identity.gallery import identity_rows, load_gallery_version
        from faceid_jobs.workspace import open_workspace

        logging.disable(logging.CRITICAL)  # completion must never print anything but candidates
        given = ctx.params
        settings = settings_from(given.get("config"), store=given.get("store"))
        manifest = load_gallery_version(open_workspace(settings))
        names = [row["name"] for row in identity_rows(manifest)]
    except Exception:  # completion fails silently, whatever the cause
        return []
    return sorted(n for n in names if n.startswith(incomplete))


# The shared options, by the parameter name a command's `Opts` field has.
_OPTIONS: dict[str, Any] = {
    "store": Annotated[str | None, typer.Option(
        "--store", help="Store folder or s3://bucket/prefix; env FACEID_JOBS_STORE. \\[default: ./faceid-data]",
        rich_help_panel="Settings", show_default=False)],
    "weights_dir": Annotated[Path | None, typer.Option(
        "--weights-dir", help="Folder with the .onnx models; env FACEID_JOBS_WEIGHTS_DIR.",
        rich_help_panel="Settings", show_default=False)],
    "device": Annotated[str | None, typer.Option(
        "--device", help="auto | cpu | cuda | tensorrt; env FACEID_JOBS_DEVICE. \\[default: auto]",
        rich_help_panel="Settings", show_default=False, autocompletion=_complete_device)],
    "config": Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML profile (e.g. configs/gpu.toml); env FACEID_JOBS_CONFIG.",
        rich_help_panel="Settings", show_default=False)],
    "json_out": Annotated[bool, typer.Option(
        "--json", help="Print one JSON object on stdout instead of tables (errors too).",
        rich_help_panel="Output")],
    "quiet": Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only results and errors.", rich_help_panel="Output")],
    "verbose": Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="More log output (-vv: debug), including FFmpeg, OpenCV, "
        "Prefect and FAISS messages (FAISS's loader lines only at -vv).", rich_help_panel="Output",
        show_default=False)],
}
_DEFAULTS = {"json_out": False, "quiet": False, "verbose": 0}

# Option sets commands ask for.
SETTINGS = ("store", "weights_dir", "device", "config")
STORE = ("store", "config")


@dataclass(frozen=True)
class Opts:
    """The shared options of one command run (None: not given)."""

    store: str | None = None
    weights_dir: Path | None = None
    device: str | None = None
    config: Path | None = None
    json_out: bool = False
    quiet: bool = False
    verbose: int = 0

    def settings(self, **flags: Any) -> Settings:
        """Settings from defaults, the config file, env, these options and `flags`."""
        return settings_from(self.config, store=self.store, weights_dir=self.weights_dir, device=self.device,
                             **flags)


# The options of the command running now (one per process); `note`/`warn` read `quiet` from it.
current = Opts()


def splice_params(fn: Callable[..., Any], wrapper: Callable[..., Any], replaced: str,
                  added: list[inspect.Parameter], *, at_end: bool) -> Callable[..., Any]:
    """Give `wrapper` (which calls `fn`) the signature Typer reads: `fn`'s parameters without
    `replaced` (the wrapper fills it in), plus `added`, at the end or before the keyword-only ones."""
    signature = inspect.signature(fn, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != replaced]
    at = len(own) if at_end else next((i for i, p in enumerate(own) if p.kind == p.KEYWORD_ONLY), len(own))
    params = [*own[:at], *added, *own[at:]]
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def command(*shared: str, json_output: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command: add the `shared` options (names of `Opts` fields), `--json`, `-q`, `-v`.

    The function takes its own options and `opts: Opts`. Library errors become one line on stderr
    (or one JSON object on stdout with `--json`) and the error's exit code; SIGINT/SIGTERM
    "interrupted" and 130/143 (`cli/stop.py`).

    Example: ``@command(*STORE)`` then ``def find(name: ..., opts: Opts) -> None``.
    """
    names = [*shared, *(["json_out"] if json_output else []), "quiet", "verbose"]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=_DEFAULTS.get(n),
                                   annotation=_OPTIONS[n]) for n in names]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            global current
            opts = Opts(**{n: kwargs.pop(n) for n in names})
            current = opts
            setup_output(opts)
            # SIGINT/SIGTERM unwind the command (temp files go with it): "interrupted", exit 130/143.
            with Stop().installed() as stop:
                try:
                    return fn(*args, opts=opts, **kwargs)
                except FaceIdError as exc:
                    fail(str(exc), int(exc.exit_code), _kind(exc))
                except KeyboardInterrupt:
                    fail("interrupted", stop.exit_code, "interrupted")
                finally:
                    _remove_handler()  # a test runner calling commands in-process swaps stderr

        return splice_params(fn, wrapper, "opts", added, at_end=True)

    return decorate


def _kind(exc: Exception) -> str:
    """PhotoError → "photo", IndexMissingError → "index_missing"."""
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def fail(message: str, exit_code: int, kind: str) -> None:
    """Report an error (one line, or one JSON object with --json) and exit with `exit_code`."""
    if current.json_out:
        print_json({"error": message, "code": kind, "exit": exit_code})
    else:
        err.print(f"[red]error:[/red] {shown(message)}", highlight=False)
    raise typer.Exit(exit_code)


def settings_from(config: Path | None, **flags: Any) -> Settings:
    """Settings from defaults, the config file, env and the given flags."""
    if flags.get("weights_dir") is not None:
        flags["weights_dir"] = str(flags["weights_dir"])
    return load_settings(config, flags)


def print_json(data: Any) -> None:
    """One JSON object on stdout; objects carry the `schema` version first."""
    if isinstance(data, dict):
        data = {"schema": JSON_SCHEMA, **data}
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def note(message: str, tag: str = "") -> None:
    """A plain-text line for the user on stderr, after a coloured `tag` ("note", "warning"), unless --quiet."""
    if not current.quiet:
        err.print(f"[yellow]{tag}:[/yellow] " * bool(tag) + shown(message), highlight=False)


def warn(message: str) -> None:
    """A warning line on stderr, unless --quiet."""
    note(message, "warning")


def log_level(opts: Opts) -> int:
    if opts.quiet:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[opts.verbose] if opts.verbose < 2 else logging.DEBUG


class _Formatter(logging.Formatter):
    """`warning: message` by default; level and logger name with -v."""

    def __init__(self, verbose: int) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s" if verbose else None)
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        # One record, one line: a file name with a newline or ESC cannot forge or colour a line.
        # (With -v a traceback may follow, on lines of its own.)
        message = printable(record.getMessage())
        if self.verbose:
            record = logging.makeLogRecord(record.__dict__ | {"msg": message, "args": None})
            return super().format(record)
        return f"{record.levelname.lower()}: {message}"


_handler: logging.Handler | None = None
# Libraries that log chatter at INFO, or below WARNING what a user needs only with -v.
_NOISY = ("faiss", "prefect", "distributed", "dask", "httpx", "httpcore", "uvicorn", "botocore", "boto3")


def setup_output(opts: Opts) -> None:
    """Logging to stderr at the level of -q/-v; FFmpeg, OpenCV, FAISS and Prefect quiet unless -v.

    Must run before OpenCV is imported: it reads its log levels from the environment then.
    """
    global _handler
    _remove_handler()
    root = logging.getLogger()
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(_Formatter(opts.verbose))
    root.addHandler(_handler)
    level = log_level(opts)
    root.setLevel(level)
    noisy = level if opts.verbose else max(level, logging.WARNING)
    for name in _NOISY:
        logging.getLogger(name).setLevel(noisy)
    # FAISS's loader tries its optimised builds first and logs each miss at INFO: only at -vv.
    logging.getLogger("faiss").setLevel(level if opts.verbose > 1 else max(level, logging.WARNING))
    if not opts.verbose:
        # A broken video is reported once by us; FFmpeg's and OpenCV's own lines about it are noise.
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        if "cv2" in sys.modules:
            _quiet_loaded_opencv()


def _remove_handler() -> None:
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None


def _quiet_loaded_opencv() -> None:
    import contextlib

    cv2 = sys.modules["cv2"]
    with contextlib.suppress(AttributeError):  # a build without the logging module
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def prefect_level(opts: Opts) -> str:
    """Console level for Prefect's (and Dask's) own loggers."""
    return "ERROR" if opts.quiet else "INFO" if opts.verbose else "WARNING"


def working(message: str):
    """A spinner with elapsed time on stderr while a long step runs (nothing when not a terminal or -q).

    Example: ``with working("merging records…"): merge(...)``
    """
    import contextlib

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if current.quiet or not err.is_terminal:
        return contextlib.nullcontext()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=err, transient=True)
    progress.add_task(message, total=None)
    return progress


def show_progress(opts: Opts) -> bool:
    """Progress bars only on a terminal, without --json or -q."""
    return not (opts.json_out or opts.quiet) and err.is_terminal


def fmt_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s past an hour)."""
    minutes, s = divmod(float(seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{s:04.1f}" if hours else f"{minutes:02d}:{s:04.1f}"


def photo_arg(purpose: str) -> Any:
    """The photo argument of a command (`read_photo_arg` reads it): "Photo of the person to <purpose>"."""
    return Annotated[Path, typer.Argument(help=f"Photo of the person to {purpose}; - reads it from stdin.",
                                          show_default=False)]


def read_photo_arg(path: Path | str, max_pixels: int | None = None) -> Any:
    """A photo argument as BGR: a file, or `-` for the bytes on stdin; refused above
    `max_pixels` (the `max_image_pixels` setting) before it is decoded."""
    from faceid_jobs.images import MAX_IMAGE_PIXELS, MAX_PHOTO_BYTES, decode_photo, read_photo

    max_pixels = max_pixels or MAX_IMAGE_PIXELS
    if str(path) != "-":
        return read_photo(path, max_pixels)
    from faceid_jobs.errors import PhotoError

    data = sys.stdin.buffer.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError(f"stdin: too large for a photo (over {MAX_PHOTO_BYTES >> 20} MiB)")
    return decode_photo(data, "stdin", max_pixels)


def short_paths(uris: Iterable[str]) -> dict[str, str]:
    """Each video URI → the shortest path suffix that tells it apart from the others shown.

    ``/m/A/clip.mp4`` and ``/m/B/clip.mp4`` → ``A/clip.mp4`` and ``B/clip.mp4``; a video
    whose file name is unique is shown by its name; an s3:// URI is cut like a path. Pure.
    """
    parts = {uri: [p for p in uri.replace("\\", "/").split("/") if p] or [uri] for uri in uris}
    shown: dict[str, str] = {}
    for uri, segs in parts.items():
        others = [o for u, o in parts.items() if u != uri]
        for n in range(1, len(segs) + 1):
            if all(o[-n:] != segs[-n:] for o in others):
                shown[uri] = "/".join(segs[-n:])
                break
        else:
            shown[uri] = uri  # a suffix of another (e.g. a relative name): only the whole tells it apart
    return shown


def photo_label(path: Path | str) -> str:
    """How a photo argument is named in results and messages."""
    return "stdin" if str(path) == "-" else str(path)
