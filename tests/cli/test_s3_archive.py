"""An S3 archive processed without downloading it: bytes and requests counted by a proxy.

The CLI runs as a user runs it, against moto on 127.0.0.1 behind a counting
proxy (`tests/faults/s3proxy.py`). One clip is long enough (12 s, over 4 MiB)
that the fingerprint's samples and each chunk's span are each a small part of
it. The first run reads each video about once (ranged reads: fingerprint
samples, container header, each chunk's span), with threads and with a local
Dask cluster of two worker processes (each with its own read cache); a re-run
of the unchanged archive reads no video byte and makes no request beyond a
fixed set of listings and reads of the store and one catalog read per video
per reader; `--verify` reads them again; a replaced object is processed again.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from faceid_jobs.storage.s3 import make_client
from tests.cli.runner import cut_clip, run
from tests.faults.s3proxy import Exchange, FaultProxy

pytestmark = [pytest.mark.models, pytest.mark.slow]

FOOTAGE, STORE = "archive-footage", "archive-store"
# key → (start frame in the Friends clip, seconds)
CLIPS = {"clips/a.mp4": (0, 12.0), "clips/day2/b.mp4": (200, 2.0), "clips/c.mp4": (400, 2.0)}
CHUNKS = 6 + 1 + 1  # 2-s chunks
# Every request of a re-run of the unchanged archive beside the catalog reads: listings and
# reads of the store's fixed objects, the same for 3 videos or 100,000 (moto lists 1,000 keys a page).
FIXED_RERUN_REQUESTS = Counter({
    f"list {FOOTAGE}/clips/": 1,  # the archive
    "list store sources/": 1, "GET keys/sources.json": 1,  # the sources index and its MAC key's pointer
    # Index merge and people discovery: the record files are those the newest manifest and people
    # version hold, so neither needs the catalog.
    "list store records/": 2,
    "list store index/manifests/": 2, "GET index/manifests/<newest>.json": 1, "list store index/stale/": 1,
    "list store journal/forget-": 2,  # pending forgets, refused before and checked by the merge
    "list store gallery/versions/": 1, "list store people/versions/": 1, "GET people/versions/<newest>.bin": 1,
    "GET keys/kek.json": 2, "HEAD /archive-store": 1,  # the key-encryption key; the store is reachable
})


@pytest.fixture(scope="module")
def archive(s3_server, weights_dir, friends_clip, tmp_path_factory):
    client = make_client()
    for bucket in (FOOTAGE, STORE):
        client.create_bucket(Bucket=bucket)
    folder = tmp_path_factory.mktemp("clips")
    sizes = {}
    for key, (start, seconds) in CLIPS.items():
        local = cut_clip(friends_clip, folder / key.replace("/", "-"), seconds, start_frame=start)
        client.upload_file(str(local), FOOTAGE, key)
        sizes[key] = local.stat().st_size
    with FaultProxy(s3_server["AWS_ENDPOINT_URL"]) as proxy:
        env = {**s3_server, "AWS_ENDPOINT_URL": proxy.url, "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
               "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(folder / "key.json")}
        yield proxy, env, sizes, folder


def _process(env, *extra, store="store"):
    result = run(["process", f"s3://{FOOTAGE}/clips/", "--store", f"s3://{STORE}/{store}", "--sample-fps", "1",
                  "--chunk-seconds", "2", "--json", *extra], env)
    assert result.returncode == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


def _video_reads(exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.path.startswith(f"/{FOOTAGE}/clips/")]


def _footage_lists(exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.path.startswith(f"/{FOOTAGE}?") or e.path.startswith(f"/{FOOTAGE}/?")]


def _first_run(proxy, env, total: int, *extra: str, store: str, bound: float) -> dict:
    """A first run on a fresh store: each video read by ranged GETs only, `bound` × the archive at most."""
    proxy.take()
    summary = _process(env, *extra, store=store)
    reads = _video_reads(proxy.take())
    assert summary["videos"] == 3 and summary["videos_unchanged"] == 0 and summary["faces"] > 0
    assert summary["chunks"] == {"done": CHUNKS, "skipped": 0, "failed": 0}
    assert reads and all(e.method == "GET" and e.range for e in reads)  # ranged reads only, never a download
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/{k}" for k in CLIPS}
    read = sum(e.sent for e in reads)
    print(f"first run {' '.join(extra) or 'threads'}: {read} video bytes in {len(reads)} ranged GETs "
          f"for {total} bytes of video ({read / total:.3f}x)")
    assert read <= bound * total, (read, total)
    return summary


def _request_kind(e: Exchange) -> str:
    """What a request of a re-run is, named without its object's hash or version: a listing (by
    prefix), a catalog read, a data key read, or the request itself."""
    path = unquote(e.path)
    if e.method == "GET" and "list-type=2" in path:
        bucket = path.lstrip("/").split("?")[0].rstrip("/")
        prefix = parse_qs(urlparse(path).query).get("prefix", [""])[0]
        return f"list {bucket}/{prefix}".replace(f"{STORE}/store/", "store ")
    name = path.removeprefix(f"/{STORE}/store/")
    if e.method == "GET" and name.startswith("videos/"):
        return "catalog GET"
    if e.method == "GET" and name.startswith("keys/data/"):
        return "data key GET"
    return f"{e.method} " + re.sub(r"/\d{20}\.", "/<newest>.", name)


def test_s3_archive_is_read_once_then_not_at_all(archive):
    proxy, env, sizes, _folder = archive
    total = sum(sizes.values())
    assert sizes["clips/a.mp4"] > 4 * 2**20  # past the fingerprint's edge reads: ranges matter
    # One process: planning and every chunk share its block cache, each byte is fetched once.
    first = _first_run(proxy, env, total, store="store", bound=1.2)
    # Two worker processes, each with its own cache: the chunks a worker runs re-read what the
    # planning worker's fingerprint read of their span (the head, the tail, the samples: about
    # 3 MiB, most of these small clips), but no byte is read by more than the two of them.
    dask = _first_run(proxy, env, total, "--dask-local", "2", store="store-dask", bound=2.0)
    assert dask["orchestrator"] == "dask" and dask["faces"] == first["faces"]

    again = _process(env)
    traffic = proxy.take()
    assert again["videos"] == 3 and again["videos_unchanged"] == 3
    assert again["chunks"] == {"done": 0, "skipped": CHUNKS, "failed": 0}
    assert again["faces_in_store"] == first["faces_in_store"] == first["faces"]
    assert again["index"]["published"] is False
    assert _video_reads(traffic) == []  # not a byte of any video
    kinds = Counter(_request_kind(e) for e in traffic)
    print("re-run requests:", dict(sorted(kinds.items())))
    # Each catalog entry is read once, by the skip check: the only requests per video.
    assert kinds.pop("catalog GET") == len(CLIPS)
    # The data keys that authenticate the entries (one per writing process), the sources marks, the
    # manifest and the people version: a few per reader, however many videos.
    assert kinds.pop("data key GET") <= 10
    assert kinds == FIXED_RERUN_REQUESTS  # nothing else

    verified = _process(env, "--verify")
    reads = _video_reads(proxy.take())
    assert verified["videos_unchanged"] == 0 and verified["chunks"] == {"done": 0, "skipped": CHUNKS, "failed": 0}
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/{k}" for k in CLIPS}  # fingerprinted again


def test_a_replaced_object_is_processed_again(archive, friends_clip):
    proxy, env, _sizes, folder = archive
    _process(env)  # whatever ran before, the archive is now complete
    replacement = cut_clip(friends_clip, folder / "replacement.mp4", 2.0, start_frame=300)
    make_client().upload_file(str(replacement), FOOTAGE, "clips/c.mp4")
    proxy.take()
    summary = _process(env)
    reads = _video_reads(proxy.take())
    assert summary["videos_unchanged"] == 2 and summary["chunks"]["done"] == 1
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/clips/c.mp4"}
    assert sum(e.sent for e in reads) <= 1.2 * replacement.stat().st_size
