"""Terminal polish: `doctor` covers key, index, video decoding and the API token (never shown);
every command's --help carries an example; `search --html` writes the report."""

from __future__ import annotations

import json

import pytest

from tests.cli.runner import run

COMMANDS = [["process"], ["search"], ["doctor"], ["export"], ["api"], ["index", "list"], ["index", "show"],
            ["index", "build"], ["index", "gc"], ["keys", "init"], ["keys", "show"], ["keys", "rotate"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(command):
    result = run([*command, "--help"], {"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "faceid-jobs " + command[0] in result.stdout.split("Example", 1)[-1], result.stdout


@pytest.mark.models
def test_doctor_reports_key_index_and_token_without_showing_them(indexed_cut, weights_dir):
    token = "doctor-secret-token"
    result = run(["doctor", "--json"], indexed_cut.env(weights_dir) | {"FACEID_JOBS_API_TOKEN": token})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["video_decoding"] is True and report["problems"] == []
    assert report["key"]["key_id"].startswith("local-") and report["index"]["version"] >= 1
    assert report["api"] == {"token_set": True}
    assert token not in result.stdout + result.stderr
    assert json.loads(indexed_cut.key_file.read_text())["key"] not in result.stdout + result.stderr


@pytest.mark.models
def test_search_html_writes_a_report(indexed_cut, weights_dir, portraits, tmp_path):
    page = tmp_path / "ross.html"
    result = run(["search", portraits["Ross"], "--html", page, "--json"], indexed_cut.env(weights_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hits"] and f"report written to {page}" in result.stderr.replace("\n", "")
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "shot3.mp4" in text and "data:image/jpeg;base64," in text
