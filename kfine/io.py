"""Atomic writes: a crash never leaves a half-written artifact that later loads."""

import contextlib
import json
import os
import shutil
import tempfile

from kfine.errors import KfineError


def _default_mode(directory):
    # mkdtemp/mkstemp create private (0700/0600) entries; artifacts should get
    # the permissions an ordinary open() or mkdir() would give them.
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary directory that replaces `path` only on success.

    The temporary directory sits beside `path` (same filesystem) so the final
    `os.replace` is a rename; on any exception it is removed and `path` is left
    as it was.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    os.chmod(staging, _default_mode(directory=True))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if os.path.isdir(path):
        retired = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old.", dir=parent)
        os.rmdir(retired)
        os.replace(path, retired)
        os.replace(staging, path)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, path)


@contextlib.contextmanager
def atomic_file(path, mode="w", encoding="utf-8"):
    """Yields a file object whose content replaces `path` only on success."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    os.close(handle)
    os.chmod(staging, _default_mode(directory=False))
    try:
        with open(staging, mode, encoding=None if "b" in mode else encoding) as stream:
            yield stream
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
        raise


def write_json(path, data):
    """Writes `data` as indented JSON, atomically."""
    with atomic_file(path) as stream:
        json.dump(data, stream, indent=2, ensure_ascii=False)
        stream.write("\n")


def write_jsonl(path, records):
    """Writes one JSON object a line, atomically."""
    with atomic_file(path) as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def artifact_path(directory, name, error=KfineError):
    """`directory/name`, refused (raising `error`) when links lead it outside `directory`.

    An artifact folder (a model, a KG) is read only inside itself: a symbolic
    link planted in a downloaded folder cannot make kfine read another file.
    """
    path = os.path.join(directory, name)
    root = os.path.realpath(directory)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise error(f"{path}: leads outside {directory} (a link to {os.path.realpath(path)}); refusing to read it")
    return path
