"""The harness's one timing helper: a command as a whole process, as a user runs it.

`run_command(cmd)` starts the command as a subprocess and returns its wall time,
user and system CPU seconds and peak RSS (`ru_maxrss` of the child, from
`os.wait4`), its exit code and its output. `Span` times a stretch of code inside
the harness (the in-process micro figures: search latency, batch sizes, stages).

Why the command goes through this file as a small launcher
(`python bench/timing.py RESULT.json -- CMD...`): on Linux a child's
`ru_maxrss` also counts the process it was forked from (the high-water mark
survives fork and is kept across exec), so a command forked straight from a
harness holding gigabytes of test vectors would report the harness's size.
The launcher is small when it forks, so what it writes is the command's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    """One whole-process run of a command."""

    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mib: float
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of the command (and the children it waited for)."""
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_line(self) -> str:
        """The last line of stderr, or the exit code: what went wrong, in one line."""
        lines = [x for x in self.stderr.strip().splitlines() if x.strip()]
        return lines[-1] if lines else f"exit {self.returncode}"

    def figures(self) -> dict[str, float]:
        """The numbers for the result JSON (no output text)."""
        d = asdict(self)
        del d["stdout"], d["stderr"]
        return d | {"cpu_s": self.cpu_s}


def run_command(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                timeout: float | None = None) -> Measured:
    """Run `cmd` to completion as its own process and measure it.

    Args:
        cmd: the command line, program first.
        env: the whole environment of the command (default: the harness's).
        cwd: working directory of the command.
        timeout: seconds before the command (and the launcher) are killed.

    Returns:
        The command's wall time, CPU seconds, peak RSS, exit code, stdout and stderr.
        Wall time is taken by the launcher around the command alone (not the launcher's
        own start). A command that cannot start gives returncode 127 and the reason.
    """
    with tempfile.NamedTemporaryFile(prefix="bench-timing-", suffix=".json", delete=False) as f:
        result = Path(f.name)
    try:
        launcher = [sys.executable, "-I", str(Path(__file__).resolve()), str(result), "--", *cmd]
        proc = subprocess.run(launcher, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=timeout, check=False)
        try:
            facts = json.loads(result.read_text())
        except (OSError, ValueError):
            nan = float("nan")
            return Measured(nan, nan, nan, nan, proc.returncode or 127, proc.stdout, proc.stderr)
    finally:
        result.unlink(missing_ok=True)
    return Measured(facts["wall_s"], facts["user_s"], facts["sys_s"], facts["maxrss_kib"] / 1024.0,
                    facts["returncode"], proc.stdout, proc.stderr)


def clock() -> float:
    """The harness's in-process clock (seconds, monotonic, high resolution)."""
    return time.perf_counter()


class Span:
    """Wall seconds of a `with` block: `with Span() as s: ...; s.seconds`."""

    seconds: float = 0.0

    def __enter__(self) -> Span:
        self._t0 = clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = clock() - self._t0


def _launch(result: str, cmd: list[str]) -> int:
    """The launcher: run `cmd` (output passed through), write its figures to `result`."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"bench/timing.py: cannot start {cmd[0]}: {exc}", file=sys.stderr)
        return 127
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        json.dump({"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
                   "maxrss_kib": usage.ru_maxrss, "returncode": code}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: python bench/timing.py RESULT.json -- COMMAND [ARGS...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(_launch(sys.argv[1], sys.argv[3:]))
