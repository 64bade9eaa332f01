"""The `relabel` flow and the enrollment event: emitted only with a Prefect server configured, and it
schedules the relabel (and index) deployments."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest


def test_api_url_from_env_or_the_active_profile(tmp_path):
    from faceid_jobs.flows.events import prefect_api_configured, prefect_api_url

    assert prefect_api_url({"PREFECT_API_URL": "http://x:4200/api"}) == "http://x:4200/api"
    assert not prefect_api_configured({"PREFECT_HOME": str(tmp_path)})
    (tmp_path / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://h:4200/api"\n[profiles.other]\n')
    assert prefect_api_url({"PREFECT_HOME": str(tmp_path)}) == "http://h:4200/api"
    assert not prefect_api_configured({"PREFECT_HOME": str(tmp_path), "PREFECT_PROFILE": "other"})


def test_no_server_configured_means_no_event_and_no_prefect_import(tmp_path):
    code = ("import sys; from faceid_jobs.flows.events import emit_enrollment_changed as e; "
            "print(e('s', 1, 'enroll', 1), 'prefect' in sys.modules)")
    env = {"PREFECT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_an_unreachable_server_is_a_warning_not_a_delay(monkeypatch, caplog):
    from faceid_jobs.flows.events import emit_enrollment_changed

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    started = time.monotonic()
    assert emit_enrollment_changed("s", 1, "enroll", 1) is False
    assert time.monotonic() - started < 3 and "does not answer" in caplog.text


@pytest.mark.models
def test_relabel_flow_labels_the_store(prefect_server, cpu_settings, tmp_path):
    from faceid_jobs.flows.common import embedder_id, settings_overrides
    from faceid_jobs.flows.relabel import relabel
    from faceid_jobs.identity.gallery import enroll
    from faceid_jobs.identity.labels import find_identity
    from faceid_jobs.workspace import open_workspace
    from tests.synthetic_store import add_video, faces_of, people, photo

    eid = embedder_id(cpu_settings)
    settings = cpu_settings.replace(store=str(tmp_path / "store"), key_file=str(tmp_path / "key.json"))
    ws = open_workspace(settings, create_key=True)
    rng = np.random.default_rng(0)
    p = people(["Ross", "Rachel"], dim=512)
    add_video(ws, "v", [[(v, 1) for v in faces_of(p["Ross"], 3, rng, noise=0.01)]
                        + [(v, 2) for v in faces_of(p["Rachel"], 2, rng, noise=0.01)]], embedder=eid)
    enroll(ws, {n: [(photo(n), p[n])] for n in p}, eid)
    state = relabel(settings=settings_overrides(settings), return_state=True)
    assert state.is_completed(), state.message
    labels = state.result()["labels"]
    assert (labels["gallery_version"], labels["files"], labels["faces"], labels["labelled_faces"]) == (1, 1, 5, 5)
    assert [a.faces for a in find_identity(ws, "Ross").appearances] == [3]


def test_enrollment_event_schedules_relabel_and_index_rebuild(prefect_server, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from faceid_jobs.flows.deploy import DeploySpec, deploy_all
    from faceid_jobs.flows.events import emit_enrollment_changed

    names = deploy_all(DeploySpec(sources=(str(tmp_path),), store=str(tmp_path / "store")), "faceid-test")
    assert "relabel/on-enrollment" in names
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    with get_client(sync_client=True) as client:
        deployments = {client.read_flow(d.flow_id).name: d for d in client.read_deployments()
                       if d.name == "on-enrollment"}
    wanted = {deployments["relabel"].id, deployments["rebuild-index"].id}
    with get_client(sync_client=True) as client:
        before = {r.id for r in client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(wanted))))}
    assert emit_enrollment_changed(str(tmp_path / "store"), 1, "enroll", 6)
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline and {r.deployment_id for r in runs} != wanted:
        with get_client(sync_client=True) as client:
            runs = [r for r in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(wanted))))
                if r.auto_scheduled is False and r.id not in before]
        time.sleep(0.5)
    with get_client(sync_client=True) as client:  # leave no triggered run behind for other tests
        for r in runs:
            client.delete_flow_run(r.id)
    assert {r.deployment_id for r in runs} == wanted, "the event did not schedule both deployments"
    assert all(r.parameters["store"] == str(tmp_path / "store") for r in runs)
