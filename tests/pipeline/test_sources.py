from faceid_jobs.pipeline.sources import discover_videos


def test_discovery_of_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"1")
    (tmp_path / "a" / "deep").mkdir()
    (tmp_path / "a" / "deep" / "y.MKV").write_bytes(b"1")
    (tmp_path / "a" / "notes.txt").write_text("no")
    (tmp_path / "a" / ".hidden.mp4").write_bytes(b"1")
    (tmp_path / "empty").mkdir()
    odd = tmp_path / "clip.bin"
    odd.write_bytes(b"1")
    videos, problems = discover_videos([
        str(tmp_path / "a"), str(tmp_path / "a" / "x.mp4"), str(odd),
        str(tmp_path / "a" / "**" / "*.MKV"), str(tmp_path / "empty"), str(tmp_path / "nope.mp4"),
        str(tmp_path / "*.avi"),
    ])
    assert videos == [str(tmp_path / "a" / "deep" / "y.MKV"), str(tmp_path / "a" / "x.mp4"), str(odd)]
    assert [p[1] for p in problems] == [
        "folder holds no video files", "file not found", "pattern matches no video files"]


def test_missing_sources_are_named_without_listing_folders(tmp_path):
    from faceid_jobs.pipeline.sources import missing_sources

    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("a file, whatever its name")
    sources = [str(tmp_path / "empty"), str(tmp_path / "x.txt"), str(tmp_path / "*.txt"), str(tmp_path / "nope.mp4"),
               str(tmp_path / "*.mkv"), "s3://bucket/prefix/"]
    assert missing_sources(sources) == [(str(tmp_path / "nope.mp4"), "file not found"),
                                        (str(tmp_path / "*.mkv"), "pattern matches no files")]


def test_exclude_under_an_s3_prefix(s3_bucket):
    """--exclude on a bucket prefix: matched against the key below the prefix or the object's name;
    each excluded object is reported, with its listing left out of the run."""
    from faceid_jobs.pipeline.sources import discover_sources
    from faceid_jobs.storage.s3 import make_client

    client = make_client()
    for key in ("footage/a.mp4", "footage/proxies/a.mp4", "footage/b.part.mp4", "footage/day2/c.mov"):
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"1")
    prefix = f"s3://{s3_bucket}/footage/"
    skipped = []
    found, problems = discover_sources([prefix], ("proxies/*", "*.part.mp4"), skipped)
    assert [o.uri for o in found] == [prefix + "a.mp4", prefix + "day2/c.mov"] and not problems
    assert all(o.etag and o.size == 1 for o in found)  # the listing's identity is kept for the rest
    assert [(s.path, s.reason) for s in skipped] == [
        (prefix + "b.part.mp4", "excluded"), (prefix + "proxies/a.mp4", "excluded")]
    # Everything excluded: the prefix is a problem of the run, like an empty one.
    found, problems = discover_sources([prefix], ("*",), [])
    assert not found and problems == [(prefix, "no video objects under this prefix")]
