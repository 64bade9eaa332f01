"""Shared state of one harness run: settings, temp folder, models (loaded on demand), commands."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.timing import Span

VENVS = REPO / "bench" / ".venvs"
CACHE = REPO / "bench" / ".cache"


class Context:
    """What the sections share: the parsed flags, one temp folder, one throwaway key file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="faceid-bench-"))
        self._models: dict[bool, Any] = {}
        # records and shards are encrypted: one throwaway key file for every store of this run
        self.key_file = self.tmp / "bench.key"
        self.load_seconds: dict[str, float] = {}
        self.section_results: dict[str, Any] = {}
        self._settings = None

    @property
    def settings(self):
        if self._settings is None:
            from faceid_jobs.config import Settings

            self._settings = Settings(weights_dir=str(self.args.weights_dir), device=self.args.device,
                                      store=str(self.tmp / "unused-store"), key_file=str(self.key_file))
        return self._settings

    def models(self, liveness: bool = True):
        """The library's model set, loaded once (in-process sections only)."""
        if liveness not in self._models:
            from faceid_jobs.models import load_models

            settings = self.settings if liveness else self.settings.replace(liveness=())
            with Span() as span:
                self._models[liveness] = load_models(settings)
            self.load_seconds["faceid-jobs" + ("" if liveness else " (no liveness)")] = span.seconds
        return self._models[liveness]

    def workspace(self, root: Path, settings=None):
        """The store at `root` opened with the run's key (created on first use)."""
        from faceid_jobs.workspace import open_workspace

        settings = (settings or self.settings).replace(store=str(root))
        return open_workspace(settings, create_key=True)

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment of the commands timed: the shell's, minus any FACEID_JOBS_* it has,
        plus the run's key file (so no user key is touched)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")}
        return env | {"FACEID_JOBS_KEY_FILE": str(self.key_file),
                      "FACEID_JOBS_STATE_DIR": str(self.tmp / "state")} | (extra or {})

    @property
    def providers(self) -> tuple[str, ...]:
        if self.args.device in ("cuda", "tensorrt"):
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        return ("CPUExecutionProvider",)

    def cli(self) -> Path | None:
        """The installed console script `faceid-jobs` beside this interpreter."""
        exe = Path(sys.executable).parent / "faceid-jobs"
        return exe if exe.is_file() else None

    def peer_python(self, name: str) -> Path | None:
        """The interpreter of a peer's own venv (bench/.venvs/<name>), made by `make bench-venvs`."""
        exe = VENVS / name / "bin" / "python"
        return exe if exe.is_file() else None

    def cleanup(self) -> None:
        if not self.args.keep_temp:
            shutil.rmtree(self.tmp, ignore_errors=True)
