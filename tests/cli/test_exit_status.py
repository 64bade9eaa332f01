"""The exit status is the command's own even when native code aborts at process exit.

Arrow's thread pools can abort while the C++ runtime tears them down
(apache/arrow#34314); CI saw `people name` print its one-line error, then die
with -6. Here a C-level exit handler that calls abort() stands in for that
teardown: the command must still exit with its status and its output whole.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

ABORT_AT_EXIT = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL('libc.so.6')\n"
    # How C++ registers a static object's destructor: it runs inside exit().
    "libc.__cxa_atexit(ctypes.cast(libc.abort, ctypes.c_void_p), None, None)\n"
    "from faceid_jobs.cli.main import main\n"
    "sys.argv = ['faceid-jobs', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize(("args", "status", "expected"), [
    (["--version"], 0, "faceid-jobs"),
    (["search", "/nonexistent/photo.jpg"], 2, "/nonexistent/photo.jpg: file not found"),
    (["search", "/nonexistent/photo.jpg", "--json"], 2, '"exit": 2'),
    (["no-such-command"], 2, "No such command"),
])
def test_native_abort_at_exit_does_not_change_the_status(args, status, expected):
    done = subprocess.run([sys.executable, "-c", ABORT_AT_EXIT, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == status, (done.returncode, done.stderr)
    assert expected in done.stdout + done.stderr


def test_without_the_console_script_the_abort_would_show():
    # The stand-in works: the same process exiting the ordinary way dies of the abort.
    plain = ABORT_AT_EXIT.replace("from faceid_jobs.cli.main import main\n", "").replace("main()\n", "")
    done = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, timeout=60)
    assert done.returncode == -6
