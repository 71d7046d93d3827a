"""Atomic, durable file writes: a temporary file beside the target, then `os.replace`.

Readers (TensorBoard, TF Serving, a resumed run, a second process) never see a
half-written file, and an interrupted write leaves the previous version intact.

Two properties a plain `tempfile.mkstemp` + rename gets wrong, and this module keeps:

* **Permissions.** `mkstemp` creates mode 0600, so every "atomic" file would be unreadable to a
  collaborator on a shared server. Temporary files and folders here are created with
  ``os.open(..., 0o666)`` / ``os.mkdir(..., 0o777)``, so the kernel applies the process umask
  (and any default ACL) exactly as for an ordinary ``open()``: 0644 under umask 022, 0600 under
  077. No code reads the umask, so nothing races with other threads changing it.
* **Durability.** The file's data is flushed (`fsync`) before the rename and the folder's entry
  after it, so a power cut leaves the old or the new file, not an empty one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _unique_name(directory: str, prefix: str, suffix: str) -> str:
    return os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")


def temp_file_beside(path: str, suffix: str = ".tmp", prefix: str = ".tmp-") -> str:
    """Creates an empty hidden file beside `path` with the mode an ordinary ``open()`` gives.

    Returns:
      The new file's path (the caller writes it, then `commit`s or removes it).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for _ in range(100):
        name = _unique_name(directory, prefix, suffix)
        try:
            os.close(os.open(name, _CREATE_FLAGS, 0o666))
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: could not create a unique temporary file")


def temp_dir_beside(path: str, prefix: str = ".tmp-") -> str:
    """Creates a hidden folder beside `path` with the mode an ordinary ``os.mkdir`` gives."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for _ in range(100):
        name = _unique_name(directory, prefix, "")
        try:
            os.mkdir(name, 0o777)
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: could not create a unique temporary folder")


def fsync_file(path: str) -> None:
    """Flushes a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    """Flushes a folder's entries (a rename into it) to disk; a no-op where folders cannot sync."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and all of Windows) refuse fsync on folders
        pass
    finally:
        os.close(fd)


def fsync_tree(directory: str) -> None:
    """Flushes every file and folder under `directory` (before renaming the folder into place)."""
    for root, _dirs, files in os.walk(directory, topdown=False):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_dir(root)


def commit(tmp: str, path: str, mode: int | None = None) -> str:
    """Moves a finished temporary file onto `path`, durably.

    Args:
      tmp: the written temporary file (from `temp_file_beside`).
      path: the final file.
      mode: permission bits to restore first, for writers that replace the temporary file
        with one of their own (whose mode may be 0600).

    Returns:
      `path`.
    """
    if mode is not None and (os.stat(tmp).st_mode & 0o7777) != mode:
        os.chmod(tmp, mode)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


def publish_dir(tmp_dir: str, path: str) -> str:
    """Renames a finished temporary folder onto `path` (absent or empty), durably.

    Raises:
      OSError: when `path` exists and is not empty (another writer got there first).
    """
    fsync_tree(tmp_dir)
    os.replace(tmp_dir, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".tmp") -> Iterator[str]:
    """Yields a temporary path beside `path`, moved onto `path` when the block succeeds.

    Args:
      path: the final file.
      suffix: the temporary file's suffix (some writers, e.g. Keras, check it).

    Yields:
      The temporary path to write to. It is removed if the block raises.
    """
    tmp = temp_file_beside(path, suffix)
    mode = os.stat(tmp).st_mode & 0o7777
    try:
        yield tmp
        commit(tmp, path, mode)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str, data: bytes) -> str:
    """Writes bytes atomically and durably and returns `path`."""
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
