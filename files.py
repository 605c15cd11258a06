"""Writing files safely: every file the project writes goes through `atomic_write`.

The bytes go to a new temporary file beside the target, which is renamed over the target
only once it is complete. Renaming is atomic, so a crash, a kill or a full disk in the middle
of a write never leaves a half-written file where a good one was: the reader sees the old
file or the new one. Renaming also replaces a symbolic link at the target instead of writing
through it, so a link planted in a run folder cannot redirect a write to a file outside it.

    with atomic_write(out / "metrics.json") as f:
        f.write(text)
    save_torch(state, out / "checkpoint.pt")

The one exception is a log that grows one record at a time (synth.py's JSONL): `append_text`
adds to its end. A kill can tear only the last line, which the reader of such a log repairs.
"""

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

import torch


class WriteError(OSError):
    """A file could not be written (e.g. the disk is full); the message names the file."""


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8", newline=None):
    """Open a temporary file for writing; on success it replaces `path` in one rename.
    On any failure the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    binary = "b" in mode
    # mkstemp creates a fresh file (O_EXCL), never one an attacker placed or linked there.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if binary else {"encoding": encoding, "newline": newline})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot leave an empty file
        os.chmod(tmp, 0o644)  # mkstemp makes it private; give it the permissions of a normal file
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(e, path):
            raise WriteError(errno.ENOSPC, f"no space left on {_device(path)} writing {path}") from None
        raise


def _disk_full(error, path):
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    # torch.save reports a failed write as a RuntimeError from its C++ writer, without errno
    if isinstance(error, RuntimeError):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(path.parent).free < 1 << 20
    return False


def _device(path):
    """The mount point holding `path`, to name in a disk-full message."""
    path = Path(path).resolve().parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def write_text(path, text):
    with atomic_write(path) as f:
        f.write(text)


def copy_file(src, dest):
    with open(src, "rb") as source, atomic_write(dest, "wb") as f:
        shutil.copyfileobj(source, f)


def append_text(path, text):
    """Add `text` to the end of `path` in one write, on disk before returning (a growing log)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise WriteError(errno.ENOSPC, f"no space left on {_device(path)} writing {path}") from None
        raise


def save_torch(obj, path):
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
