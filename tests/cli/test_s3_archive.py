"""An S3 archive processed without downloading it: bytes and requests counted by a proxy.

The CLI runs as a user runs it, against moto on 127.0.0.1 behind a counting
proxy (`tests/faults/s3proxy.py`). The first run reads each video about once
(ranged reads: fingerprint samples, container header, each chunk's span); a
re-run of the unchanged archive reads no video byte (one listing of the
bucket, one listing of the sources index, one catalog read per video);
`--verify` reads them again; a replaced object is processed again.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from faceid_jobs.storage.s3 import make_client
from tests.cli.runner import cut_clip, run
from tests.faults.s3proxy import Exchange, FaultProxy

pytestmark = [pytest.mark.models, pytest.mark.slow]

FOOTAGE, STORE = "archive-footage", "archive-store"
CLIPS = {"clips/a.mp4": 0, "clips/day2/b.mp4": 200, "clips/c.mp4": 400}  # start frames in the Friends clip


@pytest.fixture(scope="module")
def archive(s3_server, weights_dir, friends_clip, tmp_path_factory):
    client = make_client()
    for bucket in (FOOTAGE, STORE):
        client.create_bucket(Bucket=bucket)
    folder = tmp_path_factory.mktemp("clips")
    sizes = {}
    for key, start in CLIPS.items():
        local = cut_clip(friends_clip, folder / key.replace("/", "-"), 2.0, start_frame=start)
        client.upload_file(str(local), FOOTAGE, key)
        sizes[key] = local.stat().st_size
    with FaultProxy(s3_server["AWS_ENDPOINT_URL"]) as proxy:
        env = {**s3_server, "AWS_ENDPOINT_URL": proxy.url, "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
               "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(folder / "key.json")}
        yield proxy, env, sizes, folder


def _process(env, *extra):
    result = run(["process", f"s3://{FOOTAGE}/clips/", "--store", f"s3://{STORE}/store", "--sample-fps", "1",
                  "--chunk-seconds", "1", "--json", *extra], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _video_reads(exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.path.startswith(f"/{FOOTAGE}/clips/")]


def _footage_lists(exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.path.startswith(f"/{FOOTAGE}?") or e.path.startswith(f"/{FOOTAGE}/?")]


def test_s3_archive_is_read_once_then_not_at_all(archive):
    proxy, env, sizes, _folder = archive
    total = sum(sizes.values())
    proxy.take()

    first = _process(env)
    traffic = proxy.take()
    reads = _video_reads(traffic)
    assert first["videos"] == 3 and first["videos_unchanged"] == 0
    assert first["chunks"] == {"done": 6, "skipped": 0, "failed": 0} and first["faces"] > 0
    assert reads and all(e.method == "GET" and e.range for e in reads)  # ranged reads only, never a download
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/{k}" for k in CLIPS}
    read = sum(e.sent for e in reads)
    print(f"first run: {read} video bytes in {len(reads)} ranged GETs for {total} bytes of video")
    assert read <= 1.2 * total, (read, total)

    again = _process(env)
    traffic = proxy.take()
    assert again["videos"] == 3 and again["videos_unchanged"] == 3
    assert again["chunks"] == {"done": 0, "skipped": 6, "failed": 0}
    assert again["faces_in_store"] == first["faces_in_store"] == first["faces"]
    assert again["index"]["published"] is False
    assert _video_reads(traffic) == []  # not a byte of any video
    footage = [e for e in traffic if e.path.startswith(f"/{FOOTAGE}")]
    assert footage == _footage_lists(footage) and len(footage) == 1  # one listing of the bucket
    store = [e for e in traffic if e.path.startswith(f"/{STORE}")]
    assert not [e for e in store if e.path.startswith(f"/{STORE}/store/records/")]  # no chunk read or checked
    # Each catalog entry is read by the skip check, the index merge and people discovery (both read
    # every entry to find re-analysed videos): catalog reads only.
    catalog = [e for e in store if e.path.startswith(f"/{STORE}/store/videos/")]
    assert 0 < len(catalog) <= 3 * len(CLIPS)
    # The records are listed once per reader (merge, people), whatever the number of videos.
    assert 0 < len([e for e in store if "prefix=store/records/" in unquote(e.path)]) <= 2
    assert not [e for e in store if e.method in ("PUT", "POST", "DELETE")]  # nothing written
    assert len([e for e in store if "prefix=store/sources/" in unquote(e.path)]) == 1  # the index, listed once
    assert [e for e in store if e.method not in ("GET", "HEAD")] == []  # nothing written

    verified = _process(env, "--verify")
    reads = _video_reads(proxy.take())
    assert verified["videos_unchanged"] == 0 and verified["chunks"] == {"done": 0, "skipped": 6, "failed": 0}
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/{k}" for k in CLIPS}  # fingerprinted again


def test_a_replaced_object_is_processed_again(archive, friends_clip):
    proxy, env, _sizes, folder = archive
    _process(env)  # whatever ran before, the archive is now complete
    replacement = cut_clip(friends_clip, folder / "replacement.mp4", 2.0, start_frame=300)
    make_client().upload_file(str(replacement), FOOTAGE, "clips/c.mp4")
    proxy.take()
    summary = _process(env)
    reads = _video_reads(proxy.take())
    assert summary["videos_unchanged"] == 2 and summary["chunks"]["done"] == 2
    assert {e.path.split("?")[0] for e in reads} == {f"/{FOOTAGE}/clips/c.mp4"}
    assert sum(e.sent for e in reads) <= 1.2 * replacement.stat().st_size
