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
