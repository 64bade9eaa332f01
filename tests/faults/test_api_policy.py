"""Attack: an API client holding the tokens tries to choose the policy, or to exhaust the server.

Against a live `faceid-jobs api` (a subprocess on 127.0.0.1) serving a copy of
the CLI-built store (Ross and Rachel enrolled), as a client would:

- a printed photo (spoof_print_1.jpg) sent to replace Ross with
  ``require_live=false``: 403, and the gallery and audit trail are unchanged
  (issue 15: it was accepted, then matched with similarity 1.0);
- the same photo at ``/verify``: 403 with ``require_live=false``, 422 (spoof)
  by default; a server started with ``api_allow_no_liveness=true`` honours the flag;
- 1 KB BMPs declaring 16000×16000 at ``/liveness`` (three at once) and
  ``/verify``: 413, and the server's peak RSS stays where it was (before: 1.8 GB
  each, 4.6 GB for three);
- an upload above 1 MiB (Starlette's default spool size) never becomes a file
  in the server's temporary folder, not even while the request is in flight.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.test_decode_limits import rle_bmp
from tests.web.serve import Server, serve_api

httpx = pytest.importorskip("httpx")

pytestmark = [pytest.mark.faults, pytest.mark.models]

TOKEN = "search-token-" + os.urandom(12).hex()
ENROLL_TOKEN = "enroll-token-" + os.urandom(12).hex()
SEARCH = {"Authorization": f"Bearer {TOKEN}"}
ENROLL = {"Authorization": f"Bearer {ENROLL_TOKEN}"}


def _server_env(root: Path, weights_dir: Path, **extra: str) -> dict[str, str]:
    from tests.faults.conftest import store_env

    return store_env(root, weights_dir) | {
        "FACEID_JOBS_API_TOKEN": TOKEN, "FACEID_JOBS_API_ENROLL_TOKEN": ENROLL_TOKEN,
        "FACEID_JOBS_API_MAX_UPLOAD_MB": "2", "FACEID_JOBS_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def copy_root(pristine_store, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("api-policy") / "copy"
    shutil.copytree(pristine_store.root, root, ignore=shutil.ignore_patterns("state"))
    return root


@pytest.fixture(scope="module")
def strict(copy_root, weights_dir, tmp_path_factory):
    """The server with the default policy; its TMPDIR is a folder of its own."""
    tmp = tmp_path_factory.mktemp("server-tmp")
    env = _server_env(copy_root, weights_dir) | {"TMPDIR": str(tmp)}
    with serve_api(env, copy_root / "strict.log") as server:
        yield server, tmp


def _spoof(media_dir: Path, field: str = "photo") -> list:
    spoof = media_dir / "liveness" / "spoof_print_1.jpg"
    return [(field, (spoof.name, spoof.read_bytes(), "image/jpeg"))]


def _gallery_and_audit(root: Path) -> tuple[list[str], list[str]]:
    store = root / "store"
    return (sorted(p.name for p in (store / "gallery").rglob("*.bin")),
            sorted(p.name for p in (store / "audit").glob("*")))


def _peak_rss(server: Server) -> int:
    """VmHWM of the server process, bytes."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("params", [{"replace": "true", "require_live": "false"}, {"replace": "true"}],
                         ids=["require_live=false", "default"])
def test_a_printed_photo_cannot_replace_an_enrolled_identity(strict, copy_root, media_dir, params):
    server, _ = strict
    before = _gallery_and_audit(copy_root)
    r = httpx.post(server.base + "/enroll", headers=ENROLL, params=params, data={"name": "Ross"},
                   files=_spoof(media_dir, "photos"), timeout=60)
    expected = (403, "forbidden") if params.get("require_live") == "false" else (422, "spoof")
    assert (r.status_code, r.json()["code"]) == expected, r.text
    assert "\n" not in r.json()["error"]
    assert _gallery_and_audit(copy_root) == before  # no new gallery version, entry or audit record


def test_verify_enforces_liveness_whatever_the_client_asks(strict, media_dir):
    server, _ = strict
    skip = httpx.post(server.base + "/verify", headers=SEARCH, params={"require_live": "false"},
                      data={"identity": "Ross"}, files=_spoof(media_dir), timeout=60)
    assert skip.status_code == 403 and "api_allow_no_liveness" in skip.json()["error"], skip.text
    default = httpx.post(server.base + "/verify", headers=SEARCH, data={"identity": "Ross"},
                         files=_spoof(media_dir), timeout=60)
    assert default.status_code == 422 and default.json()["code"] == "spoof", default.text
    assert "match" not in default.json() and "similarity" not in default.json()


def test_a_server_that_allows_it_honours_require_live_false(copy_root, weights_dir, media_dir, tmp_path):
    env = _server_env(copy_root, weights_dir, FACEID_JOBS_API_ALLOW_NO_LIVENESS="true")
    with serve_api(env, tmp_path / "lenient.log") as server:
        r = httpx.post(server.base + "/verify", headers=SEARCH, params={"require_live": "false"},
                       data={"identity": "Ross"}, files=_spoof(media_dir), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["identity"] == "Ross" and isinstance(r.json()["similarity"], float)


def test_bombs_are_413_and_the_server_does_not_grow(strict):
    server, _ = strict
    bomb = rle_bmp(16000, 16000)
    assert len(bomb) < 1200
    before = _peak_rss(server)

    def liveness(_: int) -> httpx.Response:
        return httpx.post(server.base + "/liveness", headers=SEARCH, timeout=60,
                          files={"photo": ("bomb.bmp", bomb, "image/bmp")})

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(liveness, range(3)))
    answers.append(httpx.post(server.base + "/verify", headers=SEARCH, data={"identity": "Ross"}, timeout=60,
                              files={"photo": ("bomb.bmp", bomb, "image/bmp")}))
    for r in answers:
        assert r.status_code == 413 and "256 megapixels" in r.json()["error"], r.text
    after = _peak_rss(server)
    print(f"\nserver peak RSS {before >> 20} MiB before the bombs, {after >> 20} MiB after")
    assert after - before < 100 << 20, f"peak RSS grew by {(after - before) >> 20} MiB: a bomb was decoded"


def test_an_upload_above_1_mib_never_touches_the_temporary_folder(strict):
    server, tmp = strict
    fd_dir = Path(f"/proc/{server.proc.pid}/fd")

    def in_tmp() -> list[str]:
        found = []
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(tmp)):
                found.append(target)
        return found

    before = sorted(tmp.iterdir())  # whatever the libraries put there at start-up
    assert in_tmp() == []
    boundary = "policy-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    seen: list[list[str]] = []

    def body():
        yield head
        for _ in range(6):  # 1.5 MiB: above Starlette's 1 MiB spool size, below the 2 MiB upload limit
            yield os.urandom(256 << 10)
        time.sleep(1.0)  # the server has parsed what it got: a spooled file would be open now
        seen.append(in_tmp())
        yield f"\r\n--{boundary}--\r\n".encode()

    r = httpx.post(server.base + "/liveness", headers=SEARCH | {"Content-Type": f"multipart/form-data; "
                                                                               f"boundary={boundary}"},
                   content=body(), timeout=60)
    assert r.status_code == 400 and "not a readable image" in r.json()["error"], r.text
    assert seen == [[]], f"upload spooled to {seen}"
    assert sorted(tmp.iterdir()) == before


def test_at_most_api_max_decodes_photos_are_decoded_at_once(monkeypatch):
    """Eight uploads at once (in process: how many decodes overlap cannot be seen from outside the server)."""
    import io
    import threading
    from types import SimpleNamespace

    import faceid_jobs.web.api as api

    active, peak, lock = 0, 0, threading.Lock()

    def slow_decode(data, name, max_pixels):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return data, name

    monkeypatch.setattr(api, "decode_photo", slow_decode)
    decoder = api._Decoder(1 << 20, 50_000_000, 2)
    uploads = [SimpleNamespace(filename=f"{i}.png", file=io.BytesIO(b"x" * 10)) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        assert len(list(pool.map(decoder, uploads))) == 8
    assert peak == 2
