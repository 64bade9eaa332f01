"""S3 faults through a fault-injecting proxy on 127.0.0.1 in front of moto: retried or reported, never half-done."""

from __future__ import annotations

import time

import numpy as np
import pytest

from faceid_jobs.errors import StoreError
from faceid_jobs.index import list_versions, merge_index, open_index
from faceid_jobs.pipeline.engines import RetryPolicy, run_with_retries
from faceid_jobs.pipeline.summary import is_transient
from faceid_jobs.storage.s3 import S3Store, make_client
from tests.faults.s3proxy import FaultProxy
from tests.index.test_sharded import add_video, unit

pytestmark = pytest.mark.faults


@pytest.fixture()
def proxied(s3_server, s3_bucket, monkeypatch):
    """(proxy, store): an S3Store whose every request passes through the fault proxy."""
    with FaultProxy(s3_server["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
        yield proxy, S3Store(f"s3://{s3_bucket}/store", client=make_client())


@pytest.mark.parametrize("status", [500, 503])
def test_transient_error_statuses_are_retried(proxied, status):
    proxy, store = proxied
    proxy.add("PUT", "/store/a.bin", "status", times=2, status=status)
    store.put("a.bin", b"payload")
    proxy.add("GET", "/store/a.bin", "status", times=2, status=status)
    assert store.get("a.bin") == b"payload"
    assert sum(1 for m, p in proxy.requests if p.endswith("/store/a.bin")) == 6


def test_connection_dropped_mid_upload_and_mid_download(proxied):
    proxy, store = proxied
    blob = np.random.default_rng(0).bytes(200_000)
    proxy.add("PUT", "/store/big.bin", "drop_upload", times=1)
    store.put("big.bin", blob)
    proxy.add("GET", "/store/big.bin", "drop_response", times=2)
    assert store.get("big.bin") == blob


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (403, "Forbidden"), (404, "NoSuchBucket"),
                                            (400, "InvalidArgument")])
def test_an_answer_no_wait_cures_fails_at_once(proxied, status, code):
    """A 403 (or a missing bucket, a bad argument) on PUT is not retried, by botocore or by the
    engines' retries (10 s first wait): one request, one line naming the object, well under a second."""
    proxy, store = proxied
    proxy.add("PUT", "/store/d.bin", "status", times=-1, status=status, code=code)
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        run_with_retries(store.put, RetryPolicy(retries=3, delay_seconds=10.0), "d.bin", b"x")
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed
    assert sum(1 for m, p in proxy.requests if m == "PUT" and p.endswith("/store/d.bin")) == 1
    message = str(caught.value)
    assert "\n" not in message and message.endswith(f"/store/d.bin: cannot write ({code})"), message
    assert not is_transient(caught.value)


def test_persistent_failure_is_a_clear_error(proxied):
    proxy, store = proxied
    store.put("c.bin", b"x")
    proxy.add("GET", "/store/c.bin", "status", times=-1, status=500)
    with pytest.raises(StoreError, match=r"c\.bin: cannot read"):
        store.get("c.bin")


def test_merge_and_search_survive_transient_faults(proxied, make_workspace):
    proxy, store = proxied
    ws = make_workspace(store=store)
    rng = np.random.default_rng(1)
    add_video(ws, "s1-a", unit(rng, 9))
    proxy.add("PUT", "/index/shards/", "status", times=2, status=503)
    proxy.add("PUT", "/index/manifests/", "drop_upload", times=1)
    result = merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    assert result.published and result.vectors == 9
    proxy.add("GET", "/index/shards/", "drop_response", times=2)
    assert len(open_index(ws.store, ws.keys)) == 9


def test_persistent_fault_publishes_no_version(proxied, make_workspace):
    proxy, store = proxied
    ws = make_workspace(store=store)
    rng = np.random.default_rng(2)
    add_video(ws, "s1-a", unit(rng, 4))
    merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    add_video(ws, "s1-b", unit(rng, 4))
    proxy.add("PUT", "/index/manifests/", "status", times=-1, status=500)
    with pytest.raises(StoreError, match="cannot write"):
        merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher)
    proxy.clear()
    assert list_versions(ws.store) == [1]
    assert len(open_index(ws.store, ws.keys)) == 4  # readers still see the complete version 1
    assert merge_index(ws.store, ws.keys, "emb", cipher=ws.cipher).vectors == 8
