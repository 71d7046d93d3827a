"""Atomic writes leave either the old file or the new one, never a partial file."""

import json
import os

import pytest

from kgan import atomic


def test_write_json_and_text_round_trip(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic.write_json(str(path), {"k": [1, 2]})
    assert json.loads(path.read_text()) == {"k": [1, 2]}
    atomic.write_text(str(path), "replaced")
    assert path.read_text() == "replaced"
    assert os.listdir(path.parent) == ["a.json"]  # no temporary file left behind


def test_failed_write_keeps_previous_version_and_no_temp(tmp_path):
    path = tmp_path / "model.bin"
    atomic.write_bytes(str(path), b"good")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(str(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_suffix_is_kept_for_writers_that_check_it(tmp_path):
    with atomic.atomic_path(str(tmp_path / "g.keras"), suffix=".keras") as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "w").close()
    assert (tmp_path / "g.keras").exists()


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)], ids=["umask022", "umask077"])
def umask(request):
    """Runs a test under a umask; yields (umask, expected file mode, expected folder mode)."""
    old = os.umask(request.param[0])
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_atomic_files_get_the_mode_an_ordinary_open_gives(tmp_path, umask):
    _, file_mode, dir_mode = umask
    ordinary = tmp_path / "plain.txt"
    ordinary.write_text("x")
    assert _mode(ordinary) == file_mode  # what a collaborator expects (mkstemp gave 0600)
    atomic.write_json(str(tmp_path / "config.json"), {"a": 1})
    assert _mode(tmp_path / "config.json") == file_mode
    with atomic.atomic_path(str(tmp_path / "g.keras"), suffix=".keras") as tmp:
        assert _mode(tmp) == file_mode
        os.remove(tmp)  # a writer that replaces the file with a private one of its own
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    assert _mode(tmp_path / "g.keras") == file_mode
    folder = atomic.temp_dir_beside(str(tmp_path / "patient"))
    assert _mode(folder) == dir_mode and os.path.basename(folder).startswith(".tmp-")


def test_commit_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(
            ("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file", st.st_ino)
        )
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "report.md"
    atomic.write_text(str(path), "hello")
    file_ino, dir_ino = os.stat(path).st_ino, os.stat(tmp_path).st_ino
    assert events == [("fsync-file", file_ino), ("replace", file_ino), ("fsync-dir", dir_ino)]
    assert path.read_text() == "hello"
