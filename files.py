"""Writing files safely: every file the project writes goes through `atomic_write`.

The bytes go to a new temporary file beside the target, which is renamed over the target
only once it is complete. Renaming is atomic, so a crash, a kill or a full disk in the middle
of a write never leaves a half-written file where a good one was: the reader sees the old
file or the new one. Renaming also replaces a symbolic link at the target instead of writing
through it, so a link planted in a run folder cannot redirect a write to a file outside it.

    with atomic_write(out / "metrics.json") as f:
        f.write(text)
    save_torch(state, out / "checkpoint.pt")
    state = load_torch(out / "checkpoint.pt", "checkpoint", keys=("model",))   # and reading one back

The one exception is a log that grows one record at a time (synth.py's JSONL): `append_text`
adds to its end. A kill can tear only the last line, which the reader of such a log repairs.
"""

import contextlib
import errno
import os
import pickle
import shutil
import tempfile
from pathlib import Path


class WriteError(OSError):
    """A file could not be written (e.g. the disk is full); the message names the file."""


class ReadError(Exception):
    """A saved file (a checkpoint) could not be read back; the message names the file."""


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8", newline=None, check=None):
    """Open a temporary file for writing; on success it replaces `path` in one rename.
    On any failure the temporary file is removed and `path` is left as it was.
    check: called with the complete temporary file's path before the rename; an exception it
    raises keeps the file out (hub.py validates a download this way before it enters the cache)."""
    path = Path(path)
    binary = "b" in mode
    # mkstemp creates a fresh file (O_EXCL), never one an attacker placed or linked there.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if binary else {"encoding": encoding, "newline": newline})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot leave an empty file
        if check is not None:
            check(Path(tmp))
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


# torch is imported inside the two functions that use it, so that this module loads without it:
# gpu_check.py writes its summary before any environment with torch exists.


def save_torch(obj, path):
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load_torch(path, what="checkpoint", keys=(), map_location="cpu"):
    """torch.load a file this project saved, as plain data only, turning every failure into one
    ReadError line that names the file. keys: entries the dict must have (a wrong file says so).

    weights_only=True: a .pt file is a pickle, and unpickling arbitrary objects can run code,
    so a file holding anything but tensors and plain containers is refused, never loaded."""
    import torch

    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise ReadError(f"{path}: empty file, not a {what}")
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError(f"{path}: no such file (expected a {what})") from None
    except IsADirectoryError:
        raise ReadError(f"{path}: is a folder, not a {what}") from None
    except OSError as e:
        raise ReadError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run whatever the file holds
        raise ReadError(
            f"{path}: not a {what}: corrupt, or it holds Python objects other than tensors and plain data "
            "(such files are refused, since loading them could run code)"
        ) from None
    except Exception as e:  # a truncated zip, a text file, ...: torch's first sentence says which
        reason = str(e).split(". ")[0].strip() or type(e).__name__
        raise ReadError(f"{path}: not a {what}: truncated or corrupt ({reason})") from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise ReadError(
            f"{path}: not a {what}: it has no {', '.join(map(repr, missing))} entry (a different kind of file?)"
        )
    return obj
