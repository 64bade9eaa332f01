"""Download the model files listed in weights/manifest.toml into a folder.

Usage: python weights/download.py [--dest weights/files] [--all]

Standard library only, so it runs before the project is installed. Files
already present with the pinned sha256 are kept; a pinned file whose digest
differs is refused and removed. Entries without a url must be placed by hand
(the script says which and where).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tomllib
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=HERE / "files")
    parser.add_argument("--all", action="store_true", help="also fetch optional models")
    args = parser.parse_args()
    manifest = tomllib.loads((HERE / "manifest.toml").read_text())
    args.dest.mkdir(parents=True, exist_ok=True)
    missing = 0
    for model in manifest["model"]:
        if model.get("optional") and not args.all:
            continue
        target = args.dest / model["file"]
        pinned = model.get("sha256", "")
        if target.exists() and (not pinned or sha256(target) == pinned):
            print(f"ok       {model['file']}")
            continue
        if not model.get("url"):
            print(f"manual   {model['file']}: no download url; place it in {args.dest} "
                  f"({model['description']})", file=sys.stderr)
            missing += 1
            continue
        tmp = target.with_name(f".{target.name}.part")
        print(f"fetch    {model['url']}")
        try:
            urllib.request.urlretrieve(model["url"], tmp)
        except OSError as exc:
            print(f"failed   {model['file']}: {exc}", file=sys.stderr)
            tmp.unlink(missing_ok=True)
            missing += 1
            continue
        digest = sha256(tmp)
        if pinned and digest != pinned:
            tmp.unlink()
            print(f"refused  {model['file']}: sha256 {digest} is not the pinned {pinned}",
                  file=sys.stderr)
            missing += 1
            continue
        os.replace(tmp, target)
        note = "" if pinned else f" (not pinned: sha256 {digest})"
        print(f"saved    {model['file']}{note}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
