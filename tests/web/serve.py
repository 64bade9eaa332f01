"""Start `faceid-jobs api` as a user does (a subprocess on 127.0.0.1, a free port) and wait for /health."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

EXE = Path(sys.executable).parent / "faceid-jobs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    base: str
    log: Path
    proc: subprocess.Popen


@contextlib.contextmanager
def serve_api(env: dict[str, str], log: Path, timeout_s: float = 90) -> Iterator[Server]:
    """The server with `env` (over this process's environment without FACEID_JOBS_*), stopped afterwards."""
    import httpx

    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    with open(log, "w") as out:
        proc = subprocess.Popen([str(EXE), "api", "--host", "127.0.0.1", "--port", str(port), "-v"],
                                stdout=out, stderr=subprocess.STDOUT, env=full)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up in {timeout_s:g} s:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield Server(base, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
