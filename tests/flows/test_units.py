"""The flows' plain parts, without a Prefect server or models."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceid_jobs.config import Settings
from faceid_jobs.errors import (
    ConfigError,
    IntegrityError,
    StoreError,
    StoreTransientError,
    StoreUnwritableError,
    VideoError,
)
from faceid_jobs.flows import artifacts, common
from faceid_jobs.pipeline.summary import is_transient

REPO = Path(__file__).resolve().parents[2]


def test_flow_modules_import_without_numpy_onnxruntime_or_video():
    code = ("import sys; import faceid_jobs.flows.reprocess, faceid_jobs.flows.index, "
            "faceid_jobs.flows.search, faceid_jobs.flows.runner, faceid_jobs.flows.deploy, "
            "faceid_jobs.cli.flows_cmd; "
            "print([m for m in ('numpy', 'onnxruntime', 'cv2', 'faiss', 'pyarrow') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_settings_travel_as_flow_parameters_unchanged(monkeypatch):
    for name in [k for k in __import__("os").environ if k.startswith("FACEID_JOBS_")]:
        monkeypatch.delenv(name)
    settings = Settings(device="cpu", sample_fps=2.5, liveness=("a.onnx",), store="/data/s", threads=3)
    params = common.settings_overrides(settings)
    assert json.loads(json.dumps(params)) == params  # JSON-safe, as Prefect stores parameters
    assert common.resolve_settings(None, params) == settings
    assert common.resolve_settings(None, params, store="/other").store == "/other"
    # An empty store (a deployment parameter templated from an unset variable) changes nothing.
    assert common.resolve_settings(None, params, store="").store == "/data/s"


def _s3(code: str, status: int) -> Exception:
    """The store error an S3 answer becomes (`S3Store._error`)."""
    from botocore.exceptions import ClientError

    from faceid_jobs.storage.s3 import _kind

    return _kind(ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                             "PutObject"))(f"s3://b/k: cannot write ({code})")


def _boto(name: str) -> Exception:
    import botocore.exceptions as be

    from faceid_jobs.storage.s3 import _kind

    exc = {"EndpointConnectionError": lambda: be.EndpointConnectionError(endpoint_url="http://x"),
           "ReadTimeoutError": lambda: be.ReadTimeoutError(endpoint_url="http://x"),
           "NoCredentialsError": be.NoCredentialsError}[name]()
    return _kind(exc)(f"s3://b/k: cannot write ({name})")


@pytest.mark.parametrize(("error", "retry"), [
    # an allow-list: connections, timeouts, throttling and 5xx only
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
    (OSError(errno.ECONNREFUSED, "Connection refused"), True),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), True),
    (TimeoutError("read timed out"), True),
    (StoreTransientError("s3://b/k: cannot write (SlowDown)"), True),
    (_s3("SlowDown", 503), True),
    (_s3("ServiceUnavailable", 503), True),
    (_s3("InternalError", 500), True),
    (_s3("RequestTimeout", 400), True),
    (_s3("", 502), True),
    (_boto("EndpointConnectionError"), True),
    (_boto("ReadTimeoutError"), True),
    # what no wait cures
    *[(OSError(code, os.strerror(code)), False) for code in
      (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT)],
    (PermissionError(errno.EACCES, "Permission denied"), False),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), False),
    (StoreUnwritableError("/s/k: cannot write (No space left on device; 0.1 MiB free there)"), False),
    (StoreError("s3://b/k: cannot write"), False),
    (_s3("AccessDenied", 403), False),
    (_s3("Forbidden", 403), False),
    (_s3("403", 403), False),
    (_s3("NoSuchBucket", 404), False),
    (_s3("InvalidArgument", 400), False),
    (_boto("NoCredentialsError"), False),
    (MemoryError(), False),
    (VideoError("a.mp4: frame 9 cannot be decoded (corrupt data)"), False),
    (IntegrityError("k: fails authentication"), False),
    (ValueError("bug"), False),
])
def test_only_transient_errors_are_retried(error, retry):
    from prefect.states import Failed

    assert common.retry_if_transient(None, None, Failed(data=error)) is retry
    assert is_transient(error) is retry  # the in-process engines' condition


def test_backoff_doubles_and_zero_means_no_wait():
    assert common.backoff_delays(10, 3) == [10.0, 20.0, 40.0]
    assert common.backoff_delays(0, 2) == [0.0, 0.0]


def test_failures_name_the_video_and_chunk():
    assert common.describe_failure(VideoError("a.mp4: truncated"), "a.mp4", 3) == "a.mp4: truncated"
    assert common.describe_failure(StoreError("disk gone"), "a.mp4", 1) == "a.mp4: chunk 1: disk gone"
    assert common.describe_failure(ConnectionResetError("reset"), "a.mp4", 2) == \
        "a.mp4: chunk 2: ConnectionResetError: reset (retries exhausted)"
    assert common.describe_failure(OSError(errno.EIO, "Input/output error"), "a.mp4", 2) == \
        "a.mp4: chunk 2: OSError: [Errno 5] Input/output error"
    assert common.describe_failure(KeyError("x"), "a.mp4", 0) == \
        "a.mp4: chunk 0: internal error (KeyError: 'x')"


def test_task_runners():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    threads = common.make_task_runner()
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == common.cores()
    remote = common.make_task_runner(dask_address="tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = common.make_task_runner(dask_local=3)
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    with pytest.raises(ConfigError):
        common.make_task_runner(dask_address="tcp://h:8786", dask_local=2)
    # `workers` caps the chunks that run at once (each holds a model set)
    assert common.make_task_runner(workers=1)._max_workers == 1
    with pytest.raises(ConfigError):
        common.make_task_runner(workers=-1)


def test_threads_are_left_alone_outside_a_flow_run():
    settings = Settings(device="cpu")
    assert common.fit_threads(settings) is settings


def test_local_videos_are_used_in_place(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    with common.video_file(str(video), str(video)) as path:
        assert path == video


def test_reprocess_report_carries_the_summary():
    summary = {"videos": 1, "chunks": {"done": 2, "skipped": 0, "failed": 1}, "frames_sampled": 8,
               "faces": 5, "faces_in_store": 5, "indexed_vectors": 5, "video_seconds": 4.0,
               "wall_seconds": 2.0, "video_seconds_per_second": 2.0, "index": None, "flow_run_id": "r1", "ok": False,
               "failures": [{"video": "a|b.mp4", "chunk": 2, "error": "a|b.mp4: truncated"}]}
    text = artifacts.reprocess_markdown(summary, [{"video": "a|b.mp4", "failed": 1}])
    assert "a\\|b.mp4: truncated" in text  # table cells escaped
    block = text[text.index("```json\n") + 8:text.rindex("\n```")]
    assert json.loads(block) == summary


def test_prefect_yaml_mirrors_the_python_deployments():
    import yaml

    from faceid_jobs.flows.deploy import DeploySpec, build_deployments

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    # Deployment names are unique per flow (rebuild-index and relabel both have "on-enrollment").
    by_entrypoint = {d["entrypoint"]: d for d in config["deployments"]}
    assert len(by_entrypoint) == len(config["deployments"])
    for deployment in build_deployments(DeploySpec(sources=("x",))):
        entry = by_entrypoint[deployment.entrypoint]
        assert entry["name"] == deployment.name
        assert [s["cron"] for s in entry["schedules"]] == [s.schedule.cron for s in deployment.schedules]


def test_remote_videos_are_fetched_once_per_process_and_removed_when_evicted(tmp_path, monkeypatch):
    import contextlib

    from faceid_jobs.video import probe

    fetched = []

    @contextlib.contextmanager
    def fake_download(uri):
        path = tmp_path / f"dl-{len(fetched)}.mp4"
        path.write_bytes(uri.encode())
        fetched.append(uri)
        try:
            yield path
        finally:
            path.unlink()

    monkeypatch.setitem(probe._OPENERS, "fake", fake_download)
    from faceid_jobs.pipeline import steps

    cache = steps._VideoCache(keep=1)
    # The planning copy's path is never trusted for a remote video (the temp file is gone).
    with cache.path("fake://b/one.mp4", "/tmp/gone.mp4") as first:
        assert first.read_bytes() == b"fake://b/one.mp4"
    with cache.path("fake://b/one.mp4", "/tmp/gone.mp4") as again:
        assert again == first  # the second chunk reuses the download
    assert fetched == ["fake://b/one.mp4"]
    with cache.path("fake://b/two.mp4", "/tmp/gone.mp4") as second:
        assert second.is_file()
    assert not first.exists()  # the older idle copy was deleted
    cache.clear()
    assert not second.exists()


def test_nightly_deployment_lists_bad_files_without_failing():
    import yaml

    from faceid_jobs.config import load_settings
    from faceid_jobs.flows.deploy import REPROCESS_NAME, DeploySpec, build_deployments

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [nightly] = [d for d in config["deployments"] if d["name"] == REPROCESS_NAME]
    assert nightly["parameters"]["settings"] == {"fail_on_bad_files": False}
    assert nightly["parameters"]["store"] == "{{ $FACEID_JOBS_STORE }}"  # the merged keys stay
    deployments = {d.name: d for d in build_deployments(DeploySpec(sources=("x",), settings={"sample_fps": 2}))}
    assert deployments[REPROCESS_NAME].parameters["settings"] == {"fail_on_bad_files": False, "sample_fps": 2}
    assert not load_settings(None, deployments[REPROCESS_NAME].parameters["settings"], environ={}).fail_on_bad_files


def test_deployments_run_their_tasks_on_dask_through_job_variables(monkeypatch):
    """`deploy --dask-address/--dask-local` (DeploySpec) → each deployment's job variables → the
    environment of the flow run's process → the task runner its flows are built with."""
    from prefect_dask import DaskTaskRunner

    from faceid_jobs.flows.deploy import DeploySpec, build_deployments

    assert all(not d.job_variables for d in build_deployments(DeploySpec(sources=("x",))))  # threads
    for given, env in (({"dask_address": "tcp://10.0.0.5:8786"}, {common.DASK_ADDRESS_ENV: "tcp://10.0.0.5:8786"}),
                       ({"dask_local": 2}, {common.DASK_LOCAL_ENV: "2"})):
        deployments = build_deployments(DeploySpec(sources=("x",), **given))
        assert [d.job_variables for d in deployments] == [{"env": env}] * 4
        monkeypatch.delenv(common.DASK_ADDRESS_ENV, raising=False)
        monkeypatch.delenv(common.DASK_LOCAL_ENV, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runner = common.default_task_runner()
        assert isinstance(runner, DaskTaskRunner)
        assert runner.address == given.get("dask_address") or runner.cluster_kwargs["n_workers"] == 2
    with pytest.raises(ConfigError):
        build_deployments(DeploySpec(sources=("x",), dask_address="tcp://h:8786", dask_local=2))
    monkeypatch.setenv(common.DASK_LOCAL_ENV, "two")
    with pytest.raises(ConfigError, match=common.DASK_LOCAL_ENV):
        common.default_task_runner()


def test_run_logger_lines_are_made_printable(monkeypatch):
    """Flow lines quote video and identity names: an ESC sequence or a forged second line stays on one line."""
    import logging

    import prefect

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    lines: list[str] = []
    logger = logging.getLogger("faceid-test-run")
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(logger, "handlers", [Keep()])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(prefect, "get_run_logger", lambda: logger)
    common.run_logger().info("processed %s (%d faces)", "evil\x1b[31m.mp4\nerror: forged", 3)
    assert lines == ["processed evil\\x1b[31m.mp4\\nerror: forged (3 faces)"]
