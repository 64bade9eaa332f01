"""fileio: atomic, private writes that never follow a planted symlink or leave a partial file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from faceid_jobs import fileio
from faceid_jobs.fileio import TEMP_PREFIX, atomic_create, atomic_write, atomic_writer


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(value: int) -> None:
        os.umask(value)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o022])
@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_mode_is_exact_whatever_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write(tmp_path / "a.bin", b"one", mode)
    assert atomic_create(tmp_path / "b.bin", b"two", mode)
    with atomic_writer(tmp_path / "c.bin", mode) as f:
        f.write(b"three")
    assert [mode_of(tmp_path / n) for n in ("a.bin", "b.bin", "c.bin")] == [mode] * 3
    assert (tmp_path / "c.bin").read_bytes() == b"three"


def test_default_mode_is_private(tmp_path, umask):
    umask(0)
    atomic_write(tmp_path / "a.bin", b"x")
    assert mode_of(tmp_path / "a.bin") == 0o600


def test_replace_keeps_readers_on_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_symlink_planted_at_the_temp_name_is_not_followed(tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    outside.chmod(0o644)
    folder = tmp_path / "out"
    folder.mkdir()
    planted = f"{TEMP_PREFIX}planted"
    (folder / planted).symlink_to(outside)
    names = iter([planted, f"{TEMP_PREFIX}free"])
    monkeypatch.setattr(fileio, "_temp_name", lambda: next(names))
    atomic_write(folder / "report.html", b"page")
    assert outside.read_bytes() == b"precious" and mode_of(outside) == 0o644  # neither written nor chmod-ed
    assert (folder / "report.html").read_bytes() == b"page"
    assert (folder / planted).is_symlink()  # left alone, not written through


def test_only_planted_names_is_an_error_not_a_write_through(tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    (tmp_path / f"{TEMP_PREFIX}x").symlink_to(outside)
    monkeypatch.setattr(fileio, "_temp_name", lambda: f"{TEMP_PREFIX}x")
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "a.bin", b"data")
    assert outside.read_bytes() == b"precious" and not (tmp_path / "a.bin").exists()


def test_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.bin").symlink_to(outside)
    assert not atomic_create(folder / "a.bin", b"data")  # a name that exists is never created over
    atomic_write(folder / "a.bin", b"data")
    assert outside.read_bytes() == b"precious"
    assert not (folder / "a.bin").is_symlink() and (folder / "a.bin").read_bytes() == b"data"


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_failed_rename_leaves_no_partial_file(tmp_path, monkeypatch):
    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", no_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write(tmp_path / "a.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "a.bin", b"x")


def test_atomic_create_refuses_an_existing_name(tmp_path):
    target = tmp_path / "key.json"
    assert atomic_create(target, b"first")
    assert not atomic_create(target, b"second")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json"]
