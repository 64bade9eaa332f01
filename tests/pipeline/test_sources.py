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
