"""Where steps run (`faceid_jobs.pipeline.engines`): a lost cluster is not a failed step, and
only the user's stop reads as a stop. The CLI's own Dask failures are in tests/cli/test_orchestrators.py."""

from __future__ import annotations

import time

import pytest

from faceid_jobs.errors import ClusterLostError, RunCancelled
from faceid_jobs.pipeline.engines import DaskEngine, settle


class _Failing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def result(self):
        raise self.error


def test_a_failed_step_is_settled_a_lost_cluster_is_raised():
    value, error = settle(_Failing(OSError("disk")))
    assert value is None and isinstance(error, OSError)
    with pytest.raises(ClusterLostError):
        settle(_Failing(ClusterLostError("scheduler gone")))


@pytest.fixture(scope="module")
def local_engine():
    engine = DaskEngine(local_workers=1, no_workers_s=7)
    yield engine
    engine.close()


def test_the_local_scheduler_fails_tasks_without_workers_after_the_setting(local_engine):
    assert local_engine._cluster.scheduler.no_workers_timeout == 7


def test_the_users_stop_reads_as_cancelled_not_as_a_lost_cluster(local_engine):
    running = local_engine.submit(time.sleep, 30)
    queued = local_engine.submit(time.sleep, 30)
    local_engine.cancel()
    for future in (running, queued):
        with pytest.raises(RunCancelled):
            future.result()
