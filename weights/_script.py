"""What the weights scripts share: one-line errors and exit codes instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(body: Callable[[], None]) -> int:
    """Run a script's body; a library error or a missing converter is one line on stderr."""
    from faceid_jobs.errors import FaceIdError

    try:
        body()
    except FaceIdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except ImportError as exc:
        print(f"error: {exc.name or exc}: install the converters with pip install -e '.[convert]'", file=sys.stderr)
        return 1
    return 0
