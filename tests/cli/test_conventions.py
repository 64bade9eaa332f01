"""CLI conventions, run as a user would: --version, -h, -q/-v, JSON errors and schema, defaults in help,
`-` for stdin, completion, whole lines in pipes."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from importlib.metadata import version

import pytest

from tests.cli.runner import EXE, cut_clip, run


def _commands() -> list[list[str]]:
    """Every command and command group of the app, as the words that name it (read from the app,
    so a command added later is covered too)."""
    from typer.main import get_command

    from faceid_jobs.cli.main import app

    def walk(command, path: list[str]):
        if path:
            yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(get_command(app), []))


COMMANDS = _commands()


def _command(words: list[str]):
    """The Click command named by `words`."""
    from typer.main import get_command

    from faceid_jobs.cli.main import app

    command = get_command(app)
    for word in words:
        command = command.commands[word]
    return command


def run_stdin(args, data: bytes, env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEID_JOBS_")} | env_extra
    return subprocess.run([str(EXE), *map(str, args)], input=data, capture_output=True, env=env, timeout=300)


def complete(words: str, env_extra=None) -> list[str]:
    """Bash completion candidates for the command line `words` (the last word being completed)."""
    parts = words.split(" ")
    result = run([], {"_FACEID_JOBS_COMPLETE": "complete_bash", "COMP_WORDS": words,
                      "COMP_CWORD": str(len(parts) - 1)} | (env_extra or {}))
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout.split()


@pytest.fixture
def key_env(tmp_path):
    return {"FACEID_JOBS_STORE": str(tmp_path / "store"),
            "FACEID_JOBS_KEY": base64.b64encode(os.urandom(32)).decode()}


def test_version():
    result = run(["--version"])
    assert result.returncode == 0 and result.stdout.strip() == f"faceid-jobs {version('faceid-jobs')}"


def test_every_command_is_covered():
    names = {" ".join(c) for c in COMMANDS}
    assert {"audit", "people", "people show", "people name", "people merge", "people ignore", "index trust",
            "index verify", "keys rotate", "annotate"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_on_every_command(command):
    """-h is --help; -q/-v everywhere; every default an option's help states is shown, not eaten as markup."""
    short, long = run([*command, "-h"], {"COLUMNS": "200"}), run([*command, "--help"], {"COLUMNS": "200"})
    assert short.returncode == 0 and "Usage: faceid-jobs " + " ".join(command) in short.stdout
    assert short.stdout == long.stdout
    # The help without its panel borders, wrapped lines joined.
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", short.stdout).split())
    params = _command(command).params
    if params:  # not a bare group of subcommands
        assert "--quiet" in text and "--verbose" in text
    stated = [m.replace("\\", "") for p in params for m in re.findall(r"\\?\[default[^]]*\]", p.help or "")]
    for default in stated:
        assert " ".join(default.split()) in text, default
    assert not re.search(r"\w \.\s", text)  # "return ." was "return [default: 20]." with the default eaten


def test_defaults_are_shown_in_help_and_not_eaten_as_markup():
    search = run(["search", "-h"], {"COLUMNS": "200"}).stdout
    assert "Most hits to return. [default: 20]" in search
    assert "Lowest cosine similarity to report. [default: 0.4]" in search
    assert "[default: ./faceid-data]" in search and "[default: auto]" in search
    assert not re.search(r"\w \.\s", search)  # "return ." was "return [default: 20]." with the default eaten
    process = run(["process", "-h"], {"COLUMNS": "200"}).stdout
    assert "[default: 4]" in process and "[default: 30]" in process


def test_json_errors_are_one_object_on_stdout(tmp_path, key_env):
    missing = run(["search", tmp_path / "missing.jpg", "--json"], key_env)
    assert missing.returncode == 2
    assert json.loads(missing.stdout) == {"schema": 1, "error": f"{tmp_path / 'missing.jpg'}: file not found",
                                          "code": "photo", "exit": 2}
    assert missing.stderr == ""
    usage = run(["search", "x.jpg", "--no-such-option", "--json"], key_env)
    assert usage.returncode == 2
    data = json.loads(usage.stdout)
    assert data["code"] == "usage" and data["exit"] == 2 and "--no-such-option" in data["error"]
    plain = run(["search", tmp_path / "missing.jpg"], key_env)
    assert plain.returncode == 2 and plain.stdout == "" and "file not found" in plain.stderr


def test_index_list_json_is_an_object(key_env):
    result = run(["index", "list", "--json"], key_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"schema": 1, "versions": []}


def test_device_completion():
    assert complete("faceid-jobs search x.jpg --device c") == ["cpu", "cuda"]
    assert complete("faceid-jobs doctor --device ") == ["auto", "cpu", "cuda", "tensorrt"]


def test_identity_completion_fails_silently_without_a_key(tmp_path):
    env = {"FACEID_JOBS_STORE": str(tmp_path / "s"), "FACEID_JOBS_KEY_FILE": str(tmp_path / "none.json")}
    assert complete("faceid-jobs find R", env) == []
    assert not (tmp_path / "none.json").exists()


def test_only_keys_init_or_process_creates_a_key(tmp_path, portraits):
    """`people` on a store without a key lists nobody; `enroll` and a people edit refuse in one line
    naming `keys init` (exit 2, as for any missing key file where no data needs one), and no key appears."""
    key = tmp_path / "key.json"
    env = {"FACEID_JOBS_STORE": str(tmp_path / "store"), "FACEID_JOBS_KEY_FILE": str(key)}
    people = run(["people", "--json"], env)
    assert people.returncode == 0, people.stderr
    assert json.loads(people.stdout)["people"] == []
    for args in (["enroll", "Ross", portraits["Ross"]], ["people", "ignore", "P000001"]):
        refused = run(args, env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == f"error: {key}: key file not found (run `faceid-jobs keys init`)\n"
    assert not key.exists() and not (tmp_path / "store" / "keys").exists()


def test_stdin_that_is_not_an_image_is_named_stdin(key_env):
    result = run_stdin(["search", "-"], b"hello", key_env)
    assert result.returncode == 2 and result.stderr.decode().startswith("error: stdin: not a readable image")
    assert result.stderr.decode().count("\n") == 1


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir):
    root = tmp_path_factory.mktemp("conventions")
    return {"FACEID_JOBS_STORE": str(root / "store"), "FACEID_JOBS_WEIGHTS_DIR": str(weights_dir),
            "FACEID_JOBS_DEVICE": "cpu", "FACEID_JOBS_KEY_FILE": str(root / "key.json"),
            "PREFECT_HOME": str(root / "prefect")}


@pytest.mark.models
class TestWithModels:
    """In file order, on one store: keys init, enroll, verify, process, search."""

    def test_enroll_from_stdin_and_quiet_says_nothing(self, env, portraits):
        assert run(["keys", "init"], env).returncode == 0
        first = run_stdin(["enroll", "Ross", "-"], portraits["Ross"].read_bytes(), env)
        err = first.stderr.decode()
        assert first.returncode == 0, err
        assert "Ross" in first.stdout.decode()
        quiet = run(["enroll", "Rachel", portraits["Rachel"], "-q"], env)
        assert quiet.returncode == 0 and quiet.stderr == "" and "Rachel" in quiet.stdout
        assert complete("faceid-jobs find R", env) == ["Rachel", "Ross"]
        assert complete("faceid-jobs verify x.jpg --identity Ra", env) == ["Rachel"]

    def test_verify_from_stdin(self, env, portraits):
        result = run_stdin(["verify", "-", "--identity", "Ross", "--json"], portraits["Ross"].read_bytes(), env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["schema"] == 1 and data["match"] and data["query"]["photo"] == "stdin"

    def test_verbose_shows_library_logs(self, env, portraits):
        plain = run(["verify", portraits["Ross"], "-i", "Ross"], env)
        verbose = run(["verify", portraits["Ross"], "-i", "Ross", "-v"], env)
        assert plain.returncode == verbose.returncode == 0
        assert "INFO" not in plain.stderr and "INFO faceid_jobs.models: models loaded" in verbose.stderr

    def test_process_quiet_by_default_noisy_with_v_and_search_from_stdin(self, env, friends_clip, portraits,
                                                                          tmp_path):
        cut_clip(friends_clip, tmp_path / "cut.mp4", 3.0)
        (tmp_path / "broken.mp4").write_bytes(os.urandom(50_000))
        plain = run(["process", tmp_path, "--sample-fps", "2"], env)
        assert plain.returncode == 1  # the broken file
        lines = plain.stderr.strip().splitlines()
        assert lines == [f"failed: {tmp_path / 'broken.mp4'}: not a readable video (unknown format or corrupt "
                         "header)"], plain.stderr
        verbose = run(["process", tmp_path, "--sample-fps", "2", "-v"], env)
        assert "moov atom not found" in verbose.stderr  # FFmpeg's own line, only with -v
        # The run's own progress lines, and no Prefect: a one-off run starts no Prefect server.
        assert "INFO faceid_jobs.pipeline.process" in verbose.stderr and "prefect" not in verbose.stderr.lower()
        by_file = json.loads(run(["search", portraits["Rachel"], "--json"], env).stdout)
        # -v: our INFO lines, not FAISS's loader trying its optimised builds (only at -vv).
        verbose = run(["search", portraits["Rachel"], "--json", "-v"], env)
        assert verbose.returncode == 0 and "INFO faceid_jobs" in verbose.stderr
        assert "faiss" not in verbose.stderr.lower()
        by_stdin = run_stdin(["search", "-", "--json"], portraits["Rachel"].read_bytes(), env)
        assert by_stdin.returncode == 0, by_stdin.stderr
        data = json.loads(by_stdin.stdout)
        assert data["hits"] and data["hits"] == by_file["hits"] and data["query"]["photo"] == "stdin"

    def test_tables_are_not_wrapped_in_pipes(self, env, weights_dir, tmp_path):
        deep = tmp_path / ("a-folder-with-a-rather-long-name-" * 3).rstrip("-") / "weights"
        deep.parent.mkdir()
        deep.symlink_to(weights_dir)
        result = run(["doctor"], env | {"FACEID_JOBS_WEIGHTS_DIR": str(deep)})
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(str(deep)) > 100 and str(deep) in result.stdout  # whole, on one line
