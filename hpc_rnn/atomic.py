"""Files and directories that appear whole or not at all: temporary name, fsync, rename."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside `path` durable (the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(name: str, pid: int | None = None) -> str:
    """The name a file or directory `name` is written under until it is complete."""
    return f".{name}.tmp-{os.getpid() if pid is None else pid}"


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    path = Path(path)
    tmp = path.with_name(temp_name(path.name))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def staged_dir(
    final: str | os.PathLike, *, replace: Collection[str] | None = None
) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; on success it is synced and published at `final`
    (see `publish_dir`, which `replace` is passed to).

    On any failure the temporary directory is removed and `final` keeps its earlier content.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(temp_name(final.name))
    shutil.rmtree(tmp, ignore_errors=True)  # named by this process's PID: only it writes there
    tmp.mkdir()
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                fsync_file(p)
        fsync_dir(tmp)
        publish_dir(tmp, final, replace=replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(tmp: Path, final: Path, *, replace: Collection[str] | None = None) -> Path | None:
    """Rename the finished directory `tmp` to `final`, in one step for readers.

    An existing `final` is an error unless `replace` names the files in it that the caller
    proved to be its own earlier output: then `final` is renamed aside, `tmp` renamed in, and
    only those files are deleted from the old one. Returns the aside directory if anything
    else was in it (kept there for the user), else None.
    """
    old = None
    if final.exists():
        if replace is None:
            raise FileExistsError(final)
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    fsync_dir(final.parent)
    if old is None or remove_ours(old, replace or ()):
        return None
    return old


def remove_ours(directory: Path, names: Collection[str]) -> bool:
    """Delete the files `names` of `directory`, then the directory if that emptied it.

    How this project deletes anything that outlived the process that wrote it: by name, never
    a whole tree, so a file it did not write is never lost. Returns whether the directory is gone.
    """
    for name in names:
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError:  # not empty: someone else's files are in it
        return False
    return True
