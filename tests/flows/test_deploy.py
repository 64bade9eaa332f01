"""Deployments: `faceid-jobs deploy`'s Python path and the repository's prefect.yaml, against the
Prefect test server; the enrollment event really schedules an index rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("prefect_server")


def _prefect_cli(args, api_url, **env):
    environ = {**os.environ, "PREFECT_API_URL": api_url, "COLUMNS": "250", **env}
    return subprocess.run([sys.executable, "-m", "prefect", *args], capture_output=True, text=True,
                          env=environ, cwd=REPO, timeout=180)


def _deployments():
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_deployments()
        return {f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in found}


def test_deploy_registers_both_deployments_and_prefect_lists_them(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client

    from faceid_jobs.flows.deploy import DeploySpec, deploy_all

    spec = DeploySpec(sources=(str(tmp_path / "footage"),), store=str(tmp_path / "store"))
    names = deploy_all(spec, "faceid-test", gpu_limit=3)
    assert names == ["reprocess-archive/nightly", "rebuild-index/on-enrollment", "relabel/on-enrollment",
                     "people-discovery/weekly-rebuild"]

    listed = _prefect_cli(["deployment", "ls"], prefect_server)
    assert listed.returncode == 0, listed.stderr
    assert "reprocess-archive/nightly" in listed.stdout and "rebuild-index/on-enrollment" in listed.stdout

    found = _deployments()
    nightly, index = found["reprocess-archive/nightly"], found["rebuild-index/on-enrollment"]
    assert nightly.entrypoint == "faceid_jobs.flows.reprocess.reprocess_archive"
    assert nightly.parameters["sources"] == [str(tmp_path / "footage")]
    assert nightly.parameters["store"] == str(tmp_path / "store")
    assert nightly.work_pool_name == "faceid-test"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert [(s.schedule.cron, s.parameters) for s in index.schedules] == [("30 5 * * *", {})]
    people = found["people-discovery/weekly-rebuild"]
    assert people.entrypoint == "faceid_jobs.flows.people.people_discovery"
    assert people.parameters["rebuild"] is True and people.parameters["store"] == str(tmp_path / "store")
    assert [s.schedule.cron for s in people.schedules] == ["0 4 * * 0"]
    with get_client(sync_client=True) as client:
        limits = {c.tag: c.concurrency_limit for c in client.read_concurrency_limits(limit=50, offset=0)}
        pool = client.read_work_pool("faceid-test")
        automations = client.read_automations_by_name("enrollment changed")
    assert limits["gpu"] == 3 and pool.type == "process"
    assert automations and automations[0].trigger.expect == {"faceid.enrollment.changed"}


def test_enrollment_event_schedules_an_index_rebuild(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import emit_event

    from faceid_jobs.flows.deploy import DeploySpec, deploy_all

    deploy_all(DeploySpec(sources=(str(tmp_path),), store=str(tmp_path / "store")), "faceid-test")
    index = _deployments()["rebuild-index/on-enrollment"]
    emit_event(event="faceid.enrollment.changed", resource={"prefect.resource.id": "faceid.gallery"})
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline and not runs:
        with get_client(sync_client=True) as client:
            runs = [r for r in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[index.id])))
                if r.auto_scheduled is False]
        time.sleep(0.5)
    assert runs, "no rebuild-index run was scheduled by the event"
    assert runs[0].parameters["store"] == str(tmp_path / "store")


def test_prefect_yaml_deploys_the_same_deployments(prefect_server, tmp_path):
    from faceid_jobs.flows.deploy import DeploySpec, _ensure_process_pool, build_deployments

    _ensure_process_pool("faceid")
    result = _prefect_cli(["--no-prompt", "deploy", "--all"], prefect_server,
                          FACEID_JOBS_ARCHIVE=str(tmp_path / "footage"),
                          FACEID_JOBS_STORE=str(tmp_path / "s"), PWD=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
    found = _deployments()
    expected = {f"{d.flow_name}/{d.name}": d for d in build_deployments(DeploySpec(sources=("x",)))}
    assert set(expected) <= set(found)
    for name, want in expected.items():
        got = found[name]
        assert got.work_pool_name == "faceid"
        assert got.entrypoint == want.entrypoint
        assert [(s.schedule.cron, s.parameters) for s in got.schedules] == \
            [(s.schedule.cron, s.parameters) for s in want.schedules]
    assert found["reprocess-archive/nightly"].parameters["sources"] == [str(tmp_path / "footage")]
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert found["people-discovery/weekly-rebuild"].parameters["rebuild"] is True
    trigger = next(d for d in config["deployments"] if d["name"] == "on-enrollment")["triggers"][0]
    want_trigger = expected["rebuild-index/on-enrollment"].triggers[0]
    assert set(trigger["expect"]) == want_trigger.expect
    assert trigger.get("parameters") == want_trigger.parameters



def test_deploy_command_line(prefect_server, tmp_path):
    from tests.cli.runner import run

    result = run(["deploy", "-s", tmp_path / "a", "-s", tmp_path / "b", "--store", tmp_path / "store",
                  "--work-pool", "faceid-cli", "--reprocess-cron", "15 1 * * *", "--people-cron", "0 3 * * 6",
                  "--dask-local", "2", "--json"],
                 {"PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "prefect-home")}, timeout=240)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"schema": 1, "deployments": ["reprocess-archive/nightly",
                                                         "rebuild-index/on-enrollment",
                                                         "relabel/on-enrollment",
                                                         "people-discovery/weekly-rebuild"],
                                         "work_pool": "faceid-cli"}
    found = _deployments()
    nightly = found["reprocess-archive/nightly"]
    assert nightly.parameters["sources"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert [s.schedule.cron for s in nightly.schedules] == ["15 1 * * *"]
    assert [s.schedule.cron for s in found["people-discovery/weekly-rebuild"].schedules] == ["0 3 * * 6"]
    assert nightly.work_pool_name == "faceid-cli"
    # The flow runs start a local Dask cluster of 2 workers (a job variable their process reads).
    assert nightly.job_variables == {"env": {"FACEID_JOBS_DASK_LOCAL": "2"}}
