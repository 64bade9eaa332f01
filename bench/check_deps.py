"""Check the venv after `make bench-deps`: the peer imports, nothing was overwritten.

`pip install insightface` (with its dependencies) would pull the CPU-only
`onnxruntime` and the GUI `opencv-python`, whose files overwrite
onnxruntime-gpu's and opencv-python-headless's in the same site-packages.
`make bench-deps` therefore installs insightface with `--no-deps` plus only
what `from insightface.app import FaceAnalysis` imports. This script fails
(exit 1, with the repair command) if either conflicting distribution is
present, or if onnxruntime / cv2 / FaceAnalysis do not import.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

CONFLICTS = {
    "onnxruntime": "onnxruntime-gpu",
    "opencv-python": "opencv-python-headless",
}


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main() -> int:
    problems = []
    for bad, good in CONFLICTS.items():
        if _installed(bad):
            pin = f"{good}=={_installed(good)}" if _installed(good) else good
            problems.append(
                f"{bad} {_installed(bad)} is installed beside {good} and overwrites its files; "
                f"repair with: pip uninstall -y {bad} && pip install --force-reinstall --no-deps '{pin}'"
            )
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except Exception as exc:  # a broken runtime is exactly what we look for
        problems.append(f"onnxruntime does not import: {exc}")
        providers = []
    try:
        import cv2

        cv2.VideoCapture  # noqa: B018
    except Exception as exc:
        problems.append(f"cv2 does not import: {exc}")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from insightface.app import FaceAnalysis  # noqa: F401
    except Exception as exc:
        problems.append(f"insightface does not import ({type(exc).__name__}: {exc}); run `make bench-deps`")
    if problems:
        for p in problems:
            print(f"bench-deps: {p}", file=sys.stderr)
        return 1
    print(f"bench-deps: ok (insightface {_installed('insightface')}, onnxruntime-gpu "
          f"{_installed('onnxruntime-gpu')}: {', '.join(providers)}; "
          f"opencv-python-headless {_installed('opencv-python-headless')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
