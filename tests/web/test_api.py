"""The HTTP API against a live `faceid-jobs api` (uvicorn on 127.0.0.1, a free port) with httpx:
auth, the same hits as an in-process search, concurrent searches, bad uploads, liveness, and a
newer index version picked up while serving."""

from __future__ import annotations

import os
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli.runner import cut_clip, run
from tests.faults.test_decode_limits import rle_bmp
from tests.friends import SHOTS
from tests.web.serve import free_port, serve_api

httpx = pytest.importorskip("httpx")

TOKEN = "test-token-" + os.urandom(8).hex()
ENROLL_TOKEN = "enroll-token-" + os.urandom(8).hex()
ENROLL = {"Authorization": f"Bearer {ENROLL_TOKEN}"}


@pytest.fixture(scope="module")
def server(indexed_cut, weights_dir, tmp_path_factory):
    """`faceid-jobs api` serving the indexed cut; yields (base URL, path of its log)."""
    log = tmp_path_factory.mktemp("api") / "server.log"
    env = indexed_cut.env(weights_dir) | {"FACEID_JOBS_API_TOKEN": TOKEN, "FACEID_JOBS_API_MAX_UPLOAD_MB": "1",
                                          "FACEID_JOBS_API_ENROLL_TOKEN": ENROLL_TOKEN,
                                          "FACEID_JOBS_API_INDEX_REFRESH_S": "0.2", "FACEID_JOBS_THREADS": "1"}
    with serve_api(env, log) as running:
        yield running.base, running.log


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        yield c


def _photo(path: Path) -> dict:
    return {"photo": (path.name, path.read_bytes(), "image/png")}


# ---------------------------------------------------------------- auth


def test_health_is_open_and_everything_else_needs_the_token(server, portraits):
    base, _ = server
    health = httpx.get(base + "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["index_version"] >= 1
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = httpx.post(base + "/search", files=_photo(portraits["Ross"]), headers=headers)
        assert r.status_code == 401 and "bearer token" in r.json()["error"], r.text
        assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.post(base + "/liveness", files=_photo(portraits["Ross"])).status_code == 401
    docs = httpx.get(base + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/search" in httpx.get(base + "/openapi.json").json()["paths"]


def test_the_token_never_reaches_the_log(server, client, portraits):
    client.post("/search", files=_photo(portraits["Ross"]))
    assert TOKEN not in server[1].read_text()


# ---------------------------------------------------------------- search


def test_search_answers_as_search_json_with_the_right_person(client, portraits, search_for):
    r = client.post("/search", files=_photo(portraits["Ross"]), params={"top_k": 5})
    assert r.status_code == 200, r.text
    data = r.json()
    _, expected = search_for(portraits["Ross"], top_k=5)
    assert data == _plain(expected.to_json())
    assert data["hits"] and data["hits"][0]["video"].endswith("shot3.mp4")
    assert data["hits"][0]["similarity"] >= 0.5 and data["index"]["index_by"] == "track"
    # Chandler is not in shot 3.
    assert client.post("/search", files=_photo(portraits["Chandler"])).json()["hits"] == []


def test_eight_concurrent_searches_all_give_the_single_threaded_answer(client, portraits):
    people = ["Ross", "Phoebe", "Ross", "Chandler", "Phoebe", "Ross", "Joey", "Phoebe"]
    single = {p: client.post("/search", files=_photo(portraits[p])).json() for p in set(people)}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: client.post("/search", files=_photo(portraits[p])), people))
    for person, r in zip(people, answers, strict=True):
        assert r.status_code == 200, r.text
        assert r.json() == single[person], person
    assert single["Phoebe"]["hits"], "Phoebe is in shot 3"


def test_require_live_refuses_a_printed_photo(client, media_dir):
    r = client.post("/search", params={"require_live": "true"},
                    files=_photo(media_dir / "liveness" / "spoof_print_1.jpg"))
    assert r.status_code == 422 and r.json()["code"] == "spoof" and "does not look live" in r.json()["error"]


# ---------------------------------------------------------------- bad uploads


def _huge_png_header() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


@pytest.mark.parametrize(
    ("files", "params", "status", "message"),
    [
        ({"photo": ("notes.txt", b"just some text", "text/plain")}, {}, 400, "notes.txt: not a readable image"),
        ({"photo": ("empty.jpg", b"", "image/jpeg")}, {}, 400, "empty.jpg: empty file"),
        ({"photo": ("big.jpg", os.urandom(1_200_000), "image/jpeg")}, {}, 413, "larger than 1 MiB"),
        ({"photo": ("bomb.png", _huge_png_header(), "image/png")}, {}, 413, "1600 megapixels"),
        ({"photo": ("bomb.bmp", rle_bmp(16000, 16000), "image/bmp")}, {}, 413, "256 megapixels"),
        ({"picture": ("x.png", b"x", "image/png")}, {}, 422, "photo: Field required"),
        (None, {"top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
    ],
    ids=["not-an-image", "empty", "too-large", "pixel-bomb", "bmp-bomb", "wrong-field", "bad-param"],
)
def test_bad_uploads_get_a_4xx_with_a_message(client, portraits, files, params, status, message):
    r = client.post("/search", files=files or _photo(portraits["Ross"]), params=params)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_a_photo_without_a_face_is_422(client, tmp_path):
    _, buf = cv2.imencode(".png", np.full((200, 200, 3), 127, np.uint8))
    r = client.post("/search", files={"photo": ("grey.png", buf.tobytes(), "image/png")})
    assert r.status_code == 422 and r.json() == {"error": "grey.png: no face found in the photo", "code": "no_face"}


# ---------------------------------------------------------------- enroll and verify


def test_enroll_then_verify(client, portraits, media_dir):
    ross = [("photos", ("Ross.png", portraits["Ross"].read_bytes(), "image/png"))]
    r = client.post("/enroll", headers=ENROLL, data={"name": "Ross"}, files=ross)
    assert r.status_code == 200, r.text
    assert r.json()["names"] == ["Ross"] and r.json()["embeddings"] == 1 and r.json()["photos"][0]["liveness"] > 0.5

    same = client.post("/verify", data={"identity": "Ross"}, files=_photo(portraits["Ross"])).json()
    other = client.post("/verify", data={"identity": "Ross"}, files=_photo(portraits["Chandler"])).json()
    assert same["match"] is True and same["similarity"] > 0.9
    assert other["match"] is False and other["similarity"] < other["threshold"]

    unknown = client.post("/verify", data={"identity": "Nobody"}, files=_photo(portraits["Ross"]))
    assert unknown.status_code == 404 and "Nobody: not enrolled" in unknown.json()["error"]
    spoof = media_dir / "liveness" / "spoof_print_1.jpg"
    printed = [("photos", (spoof.name, spoof.read_bytes(), "image/jpeg"))]
    refused = client.post("/enroll", headers=ENROLL, data={"name": "Printed"}, files=printed)
    assert refused.status_code == 422 and refused.json()["code"] == "spoof"
    assert client.post("/verify", data={"identity": "Printed"}, files=_photo(portraits["Ross"])).status_code == 404


def test_an_api_enrollment_writes_the_audit_record_a_cli_one_would(client, portraits, indexed_cut):
    import json

    audit = indexed_cut.root / "store" / "audit"
    before = set(audit.glob("*.json")) if audit.exists() else set()
    r = client.post("/enroll", headers=ENROLL, data={"name": "Chandler"}, files=[("photos", ("Chandler.png",
                                                                             portraits["Chandler"].read_bytes(),
                                                                             "image/png"))])
    assert r.status_code == 200, r.text
    [new] = set(audit.glob("*.json")) - before
    record = json.loads(new.read_text())
    assert record["action"] == "enroll" and r.json()["audit_key"] == f"audit/{new.name}"
    assert record["what"]["gallery_version"] == r.json()["version"] and record["what"]["via"] == "api"
    assert record["what"]["liveness_checked"] is True and record["what"]["photos"] == 1


# ---------------------------------------------------------------- liveness


@pytest.mark.parametrize(("name", "live"), [("spoof_print_1.jpg", False), ("live_1.jpg", True)])
def test_liveness_scores_every_face(client, media_dir, name, live):
    r = client.post("/liveness", files={"photo": (name, (media_dir / "liveness" / name).read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) >= 1 and len(faces[0]["bbox"]) == 4
    assert (faces[0]["liveness"] > 0.5) is live and faces[0]["live"] is live


# ---------------------------------------------------------------- index refresh (changes the store: last)


def test_a_newer_index_version_is_picked_up_while_serving(server, client, indexed_cut, friends_clip, models,
                                                          portraits):
    from faceid_jobs.pipeline.process import process_sources
    from faceid_jobs.workspace import open_workspace

    before = httpx.get(server[0] + "/health").json()["index_version"]
    # One more second of the clip, from shot 1 (Rachel and Joey), into the same store.
    extra = cut_clip(friends_clip, indexed_cut.root / "shot1.mp4", 1.0, start_frame=SHOTS[1][0])
    summary = process_sources([str(extra)], indexed_cut.settings, open_workspace(indexed_cut.settings), models)
    assert not summary.failures
    deadline = time.monotonic() + 20
    while True:
        hits = client.post("/search", files=_photo(portraits["Rachel"])).json()["hits"]
        if hits or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert hits and hits[0]["video"].endswith("shot1.mp4")
    assert httpx.get(server[0] + "/health").json()["index_version"] > before


# ---------------------------------------------------------------- start-up refusals and helpers


def test_refuses_to_start_without_a_token_or_with_no_auth_on_a_public_address(tmp_path):
    no_token = run(["api", "--port", str(free_port())], {"FACEID_JOBS_STORE": str(tmp_path)})
    assert no_token.returncode == 2 and "FACEID_JOBS_API_TOKEN" in no_token.stderr
    public = run(["api", "--no-auth", "--host", "0.0.0.0"], {"FACEID_JOBS_STORE": str(tmp_path)})
    assert public.returncode == 2 and "loopback" in public.stderr and "Traceback" not in public.stderr


def _plain(data):
    """JSON round-trip: tuples become lists, as on the wire."""
    import json

    return json.loads(json.dumps(data))


def test_the_token_setting_is_kept_out_of_repr_and_flow_parameters():
    from faceid_jobs.config import Settings
    from faceid_jobs.flows.common import settings_overrides

    settings = Settings(api_token="hush-hush-token")
    assert "hush-hush-token" not in repr(settings)
    assert "api_token" not in settings_overrides(settings) and "api_max_upload_mb" in settings_overrides(settings)


# ---------------------------------------------------------------- server policy (issue 15), as an attacker


def test_the_search_token_cannot_enroll(client, portraits):
    r = client.post("/enroll", data={"name": "Mallory"}, files=[("photos", ("m.png", portraits["Ross"].read_bytes(),
                                                                            "image/png"))])
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


@pytest.mark.parametrize(("path", "data", "params"), [
    ("/verify", {"identity": "Ross"}, {"require_live": "false"}),
    ("/enroll", {"name": "Mallory"}, {"require_live": "false"}),
    ("/verify", {"identity": "Ross"}, {"threshold": "0.05"}),
])
def test_a_client_cannot_skip_liveness_or_lower_the_verify_threshold(client, portraits, path, data, params):
    field = "photos" if path == "/enroll" else "photo"
    r = client.post(path, headers=ENROLL if path == "/enroll" else {}, data=data, params=params,
                    files=[(field, ("p.png", portraits["Ross"].read_bytes(), "image/png"))])
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert "\n" not in r.json()["error"] and ("api_allow_no_liveness" in r.json()["error"]
                                              or "identity_threshold" in r.json()["error"])


def test_an_enroll_token_equal_to_the_search_token_is_refused(tmp_path):
    same = "x" * 40
    env = {"FACEID_JOBS_STORE": str(tmp_path), "FACEID_JOBS_API_TOKEN": same, "FACEID_JOBS_API_ENROLL_TOKEN": same}
    result = run(["api", "--port", str(free_port())], env)
    assert result.returncode == 2 and "a token of its own" in result.stderr and same not in result.stderr


def test_short_tokens_are_refused_on_a_public_address(tmp_path):
    short = run(["api", "--host", "0.0.0.0", "--port", str(free_port())],
                {"FACEID_JOBS_STORE": str(tmp_path), "FACEID_JOBS_API_TOKEN": "short-token"})
    assert short.returncode == 2 and "32 characters" in short.stderr and "short-token" not in short.stderr


# ---------------------------------------------------------------- people


def test_people_and_one_person_answer_as_the_cli_json(server, client, indexed_cut, weights_dir):
    import json

    env = indexed_cut.env(weights_dir)
    listed = client.get("/people", params={"min_faces": 0})
    assert listed.status_code == 200, listed.text
    cli = run(["people", "--json", "--min-faces", "0"], env)  # process ran discovery: nothing new to cluster
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    expected.pop("schema")  # the CLI's --json objects carry a schema version; the API's answers do not
    expected["clustering"].pop("seconds")
    assert listed.json() == expected and listed.json()["people"], listed.text
    assert len(client.get("/people", params={"min_faces": 0, "limit": 1}).json()["people"]) == 1
    pid = expected["people"][0]["id"]
    one = client.get(f"/people/{pid.lower()}")
    assert one.status_code == 200 and one.json() == _without_schema(
        run(["people", "show", pid, "--json"], env).stdout)
    unknown = client.get("/people/P999999")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_person", unknown.text
    assert "P999999: no such person" in unknown.json()["error"]
    assert httpx.get(server[0] + "/people").status_code == 401  # the search token is needed


def _without_schema(stdout: str) -> dict:
    import json

    return {k: v for k, v in json.loads(stdout).items() if k != "schema"}


# ---------------------------------------------------------------- a pending forget (changes the store: last)


def test_a_pending_forget_is_refused_by_the_api_cli_and_library(server, client, indexed_cut, weights_dir,
                                                                portraits, models, tmp_path):
    """While a forget's intent is in the store (one interrupted before it finished), the API answers its
    searches and people 503 with one line naming `faceid-jobs forget --resume`; `search`, `export` and
    `people` exit 4 naming it, and so does the library's `search_photo`. Once it is gone, searches answer."""
    from faceid_jobs.identity.intent import PendingForgetError, clear_intent, new_intent, save_intent
    from faceid_jobs.models import embedder_id
    from faceid_jobs.search.photo_search import search_photo
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(indexed_cut.settings)
    intent = new_intent("Ross", embedder_id(indexed_cut.settings), indexed_cut.settings.identity_threshold, True)
    save_intent(ws, intent)
    env = indexed_cut.env(weights_dir)
    try:
        deadline = time.monotonic() + 20
        while (r := client.post("/search", files=_photo(portraits["Ross"]))).status_code == 200:
            assert time.monotonic() < deadline, "the API kept searching with a forget pending"
            time.sleep(0.3)
        for answer in (r, client.get("/people"), client.get("/people/P000001")):
            assert answer.status_code == 503 and answer.json()["code"] == "forget_pending", answer.text
            message = answer.json()["error"]
            assert "\n" not in message and message.startswith(intent.key) and \
                "faceid-jobs forget --resume" in message, message
        for args in (["search", portraits["Ross"]], ["export", "--plaintext", tmp_path / "out"], ["people"]):
            refused = run(args, env)
            assert refused.returncode == 4, (args, refused.stdout, refused.stderr)
            assert "faceid-jobs forget --resume" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "out").exists()
        with pytest.raises(PendingForgetError, match="faceid-jobs forget --resume"):
            search_photo(portraits["Ross"], indexed_cut.settings, models=models)
    finally:
        clear_intent(ws, intent)
    deadline = time.monotonic() + 20
    while (r := client.post("/search", files=_photo(portraits["Ross"]))).status_code == 503:
        assert time.monotonic() < deadline, "the API kept refusing once the forget was finished"
        time.sleep(0.3)
    assert r.status_code == 200 and r.json()["hits"], r.text
