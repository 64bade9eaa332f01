import os
import threading

import pytest

from faceid_jobs.errors import IntegrityError, StoreError
from faceid_jobs.storage import LocalStore, open_store


@pytest.fixture()
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def test_put_get_list_delete(store):
    store.put("a/b/one.bin", b"1")
    store.put("a/two.bin", b"22")
    store.put("c.json", b"{}")
    assert store.get("a/b/one.bin") == b"1"
    assert list(store.list("a/")) == ["a/b/one.bin", "a/two.bin"]
    assert list(store.list("a/t")) == ["a/two.bin"]
    assert list(store.list()) == ["a/b/one.bin", "a/two.bin", "c.json"]
    store.delete("a/two.bin")
    store.delete("a/two.bin")  # absent is fine
    assert not store.exists("a/two.bin")
    with pytest.raises(KeyError):
        store.get("a/two.bin")


def test_put_replaces_atomically_and_leaves_no_temp(store):
    store.put("k", b"old")
    store.put("k", b"new")
    assert store.get("k") == b"new"
    assert [p.name for p in store.root.iterdir()] == ["k"]


def test_temp_files_of_killed_writers_are_invisible(store):
    (store.root / "x").mkdir(parents=True)
    (store.root / "x" / ".tmp-deadbeef").write_bytes(b"partial")
    assert list(store.list()) == []
    assert not store.exists("x/.tmp-deadbeef".replace(".tmp-", ""))


def test_put_if_absent_has_one_winner(store):
    results = []
    barrier = threading.Barrier(8)

    def attempt(i):
        barrier.wait()
        results.append((i, store.put_if_absent("manifest/1.json", str(i).encode())))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in results if ok]
    assert len(winners) == 1
    assert store.get("manifest/1.json") == str(winners[0]).encode()
    assert [p.name for p in (store.root / "manifest").iterdir()] == ["1.json"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/", "a\\b", "a\x00b", "a/b\nc",
                                 "a/.tmp-x", "../outside"])
def test_bad_keys_refused(store, key):
    for action in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key),
                   lambda: store.put_if_absent(key, b"x"), lambda: store.exists(key)):
        with pytest.raises(IntegrityError, match="invalid store key") as info:
            action()
        assert "\n" not in str(info.value)
    assert not (store.root.parent / "outside").exists()


@pytest.mark.parametrize("prefix", ["../", "/etc", "a/../../", "a\x00"])
def test_bad_list_prefixes_refused(store, prefix):
    with pytest.raises(IntegrityError, match="invalid store key"):
        list(store.list(prefix))


def test_symlinks_leading_outside_are_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(b"secret")
    store.put("a/kept.bin", b"1")
    os.symlink(outside, store.root / "linked")            # a folder link
    os.symlink(outside / "secret.json", store.root / "a" / "file.json")  # a file link
    with pytest.raises(IntegrityError, match="outside the store"):
        list(store.list("linked/"))
    for action in (lambda: store.get("linked/secret.json"), lambda: store.get("a/file.json"),
                   lambda: store.put("linked/new.bin", b"x"), lambda: store.delete("linked/secret.json"),
                   lambda: store.open_read("a/file.json")):
        with pytest.raises(IntegrityError, match="outside the store"):
            action()
    # A whole-store listing does not walk into the linked folder.
    assert "linked/secret.json" not in list(store.list())
    assert sorted(p.name for p in outside.iterdir()) == ["secret.json"]
    assert (outside / "secret.json").read_bytes() == b"secret"


def test_symlink_inside_the_store_is_not_followed_on_read(store):
    store.put("a/real.bin", b"1")
    os.symlink(store.root / "a" / "real.bin", store.root / "a" / "alias.bin")
    with pytest.raises(IntegrityError, match="symlink"):
        store.get("a/alias.bin")


def test_objects_keep_their_mode_whatever_the_umask(store):
    old = os.umask(0o077)
    try:
        store.put("m/a.bin", b"1")
        store.put_if_absent("m/b.bin", b"2")
    finally:
        os.umask(old)
    assert {oct((store.root / "m" / n).stat().st_mode & 0o777) for n in ("a.bin", "b.bin")} == {"0o644"}


def test_unwritable_store_reports(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir"
        target.write_text("x")
        store = LocalStore(target / "sub")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        store = LocalStore(ro / "sub")
    with pytest.raises(StoreError, match="cannot"):
        store.check()


def test_open_store_local(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path.resolve()
