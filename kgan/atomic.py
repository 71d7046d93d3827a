"""Atomic file writes: a temporary file beside the target, then `os.replace`.

Readers (TensorBoard, TF Serving, a resumed run, a second process) never see a
half-written file, and an interrupted write leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".tmp") -> Iterator[str]:
    """Yields a temporary path beside `path`, moved onto `path` when the block succeeds.

    Args:
      path: the final file.
      suffix: the temporary file's suffix (some writers, e.g. Keras, check it).

    Yields:
      The temporary path to write to. It is removed if the block raises.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str, data: bytes) -> str:
    """Writes bytes atomically and returns `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text(path: str, text: str) -> str:
    """Writes UTF-8 text atomically and returns `path`."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, payload, **dump_kwargs) -> str:
    """Writes JSON (indented by 2 unless told otherwise) atomically and returns `path`."""
    dump_kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(payload, **dump_kwargs) + "\n")
