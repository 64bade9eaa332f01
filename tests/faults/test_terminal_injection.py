"""Attack: a video file named to take over the terminal and forge log lines, processed and searched.

The name holds an ESC sequence (clear screen, red), Rich markup and a newline
followed by a fake error line and a carriage return. Before, `process` and
`search` printed it raw: colours injected, a forged `error:` line. Now every
name goes through `printable` (control characters as escapes) and Rich's
markup escaping; `--json` output keeps the exact name (json.dumps escapes it).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.cli.runner import EXE, cut_clip

pytestmark = [pytest.mark.faults, pytest.mark.models]

EVIL = "evil\x1b[2J\x1b[31m[red]RED[bold]\nerror: forged line\r"  # no "/": a file name
FORGED = "error: forged line"


def _run(args, env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, env=full, timeout=600)


def _assert_clean(result: subprocess.CompletedProcess, *, joined: bool = False) -> None:
    """`joined`: the newline and carriage return may also show as spaces (an error message made one line)."""
    for stream in (result.stdout, result.stderr):
        assert b"\x1b" not in stream and b"\r" not in stream, stream
        text = stream.decode()
        assert "Traceback" not in text
        for line in text.splitlines():  # the forged text only ever inside the line naming the file
            assert not line.startswith(FORGED), text
            if FORGED in line:
                assert ("evil\\x1b[2J" in line or "evil\\u001b[2J" in line), line  # text / JSON escape
                assert "\\n" + FORGED + "\\r" in line or (joined and f" {FORGED} " in line), line
        assert "[red]RED[bold]" in text or FORGED not in text  # markup shown as text, not applied


@pytest.fixture(scope="module")
def world(tmp_path_factory, weights_dir, friends_clip):
    base = tmp_path_factory.mktemp("evil")
    env = {"FACEID_JOBS_STORE": str(base / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
           "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(base / "key.json"),
           "FACEID_JOBS_SAMPLE_FPS": "2", "FACEID_JOBS_CHUNK_SECONDS": "30"}
    good = base / "footage" / f"{EVIL}.mp4"
    good.parent.mkdir()
    cut_clip(friends_clip, good, 4.0, start_frame=280)  # shot 3: Phoebe and Ross
    broken = base / "footage" / f"{EVIL}broken.mp4"
    broken.write_bytes(b"not a video at all")
    return base, env, good, broken


def test_process_prints_the_names_escaped(world):
    base, env, _, broken = world
    result = _run(["process", base / "footage", "-v"], env)
    assert result.returncode == 1, result.stderr  # the broken one fails, as any unreadable video
    _assert_clean(result)
    assert "broken.mp4" in result.stderr.decode()
    as_json = _run(["process", base / "footage", "--json"], env)
    _assert_clean(as_json)
    [failure] = json.loads(as_json.stdout)["failures"]
    assert str(broken) in failure["error"]  # exact, raw name in JSON


def test_search_prints_the_names_escaped_and_json_keeps_them_exact(world, portraits):
    _, env, good, _ = world
    result = _run(["search", portraits["Ross"], "--threshold", "0.3"], env)
    assert result.returncode == 0, result.stderr
    _assert_clean(result)
    assert FORGED in result.stdout.decode()  # the hit's video is listed, escaped
    as_json = _run(["search", portraits["Ross"], "--threshold", "0.3", "--json"], env)
    assert as_json.returncode == 0
    assert b"\x1b" not in as_json.stdout and b"\\u001b" in as_json.stdout
    hits = json.loads(as_json.stdout)["hits"]
    assert hits and {h["video"] for h in hits} == {str(good)}


def test_key_ids_planted_in_the_store_are_shown_escaped(built):
    """Someone with write access plants the evil name as the KEK id wrapping the index manifest's data key:
    `keys status` counts data keys by that id, and `doctor` quotes it in the problem it reports."""
    manifest = sorted((built.store / "index" / "manifests").glob("*.json"))[-1]
    data_key = built.store / "keys" / "data" / f"{json.loads(manifest.read_bytes())['mac_key']}.json"
    body = json.loads(data_key.read_bytes())
    body["wrapped"] = EVIL + ":" + body["wrapped"].rpartition(":")[2]
    data_key.write_text(json.dumps(body))
    for args in (["keys", "status"], ["doctor"]):
        result = _run(args, built.env)
        _assert_clean(result, joined=True)
        assert FORGED in (result.stdout + result.stderr).decode(), (args, result)  # shown, as text
