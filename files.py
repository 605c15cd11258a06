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

The exceptions are logs that grow as they are written: synth.py's JSONL and reproduce.py's log
(`append_text` adds to the end; a kill can tear only the last line, which the JSONL's reader
repairs), and gpu_check.py's step logs, which run without the project's environment.

Folders inside a run are made with `make_folder`, which replaces a planted link to a folder as
atomic_write replaces a linked file. A run holds `locked(folder)` for its whole life, so a second
process writing into the same folder refuses instead of mixing its files with the first's; the
holder removes the temporary files a killed writer left there (`remove_leftovers`).
"""

import contextlib
import errno
import os
import pickle
import shutil
import socket
import tempfile
import time
from pathlib import Path


class WriteError(OSError):
    """A file could not be written (e.g. the disk is full); the message names the file."""


class ReadError(Exception):
    """A saved file (a checkpoint) could not be read back; the message names the file."""


class LockError(Exception):
    """Another process is writing into the folder (or its lock cannot be made); the message says which."""


class LockHeld(LockError):
    """The lock is held by a process that runs (or may: one on another host)."""


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


def make_folder(path):
    """The folder `path`, created if need be. A symbolic link there (say `report -> /elsewhere`,
    planted in a run folder) is replaced by a real folder, never written through."""
    path = Path(path)
    if path.is_symlink():
        path.unlink()  # the link only; what it points to is left alone
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def folder_beside(path):
    """A new, empty folder beside `path` (on its file system, so it can be renamed to `path` in one
    step), with a normal folder's permissions: a folder's files are written there and renamed in
    once complete, as atomic_write does for one file. Removed on exit unless renamed away."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(fresh, 0o755)  # mkdtemp makes it private
        yield fresh
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)


def remove(path):
    """Delete a file, a link (never what it points to) or a whole folder."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # removes links inside it, never their targets
    else:
        path.unlink()


def remove_leftovers(folder, patterns, min_age=0, log=print):
    """Delete the temporary files matching `patterns` (globs under `folder`) that a process killed
    mid-write (SIGKILL, a power cut) left: it never ran atomic_write's cleanup, and each kill during
    a run's checkpoint.pt write kept a file as big as the model and its optimizer. Only files no
    process writes any more: the caller holds the folder's lock (min_age 0: a run's own files), or
    the file is untouched for min_age seconds (a live download writes at least every 30 s)."""
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)) if Path(folder).is_dir() else ():
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another process
                if (path.is_file() or path.is_symlink()) and time.time() - path.lstat().st_mtime >= min_age:
                    path.unlink()
                    log(f"removed {path}, left by a write that was killed")


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


def short_reason(error):
    """An exception's first line (200 characters at most), or its type's name: the "(...)" of a
    one-line error."""
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def load_run_best(run_dir, keys, map_location="cpu"):
    """A finished train.py run's best.pt (load_torch, with `keys`), once the run's tokenizer/vocab.txt,
    which every reader of the model needs too, is there: a missing file is a ReadError naming it."""
    best, vocab = Path(run_dir) / "best.pt", Path(run_dir) / "tokenizer" / "vocab.txt"
    for needed in (best, vocab):
        if not needed.is_file():
            raise ReadError(f"{needed}: no such file (is {run_dir} a finished run of train.py?)")
    return load_torch(best, "best model of a train.py run", keys=keys, map_location=map_location)


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


# ----------------------------------------------------------------------------
# one process per run folder

LOCK = ".lock"  # in the run folder while a process writes into it: "pid host"


@contextlib.contextmanager
def locked(folder, log=print, name=LOCK):
    """Hold FOLDER/.lock (FOLDER/name) while the body runs; a second process asking for it gets LockError.

    The lock appears in one step (a complete temporary file hard-linked to its name; linking fails
    if the name exists), so exactly one process can hold it and it is never seen half-written. It
    holds "pid host": a lock whose process no longer runs on this host (killed by SIGKILL, a power
    cut) is stale, and is taken over with a message. It is removed on every exit of the body:
    a normal one, an error, Ctrl-C."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LockError(f"{folder}: cannot make the folder ({e.strerror or e})") from None
    path, mine = folder / name, f"{os.getpid()} {socket.gethostname()}\n"
    _acquire(path, mine, log)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text() == mine:  # still ours (not taken over as stale by mistake)
                path.unlink()


def _acquire(path, mine, log):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        for _ in range(10):  # a retry only after a stale lock was moved aside, or the lock vanished
            try:
                _link(tmp, path, mine)
                return
            except FileExistsError:
                holder = _read(path)
                if holder == "":
                    raise LockError(f"{path}: not a lock ('pid host'); delete it if no process writes here") from None
                if holder and not _stale(holder):
                    pid, host = holder.split()
                    raise LockHeld(
                        f"{path.parent} is in use: process {pid} on {host} is writing into it (lock {path}); "
                        f"wait for it to end, or if it no longer runs, delete {path}"
                    ) from None
                if holder:
                    _take_over(path, holder, log)
        raise LockError(f"{path}: could not take the lock (other processes keep taking it)")
    except OSError as e:
        raise LockError(f"{path}: cannot make the lock file ({e.strerror or e})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _link(tmp, path, mine):
    """Give the complete file `tmp` the name `path`, failing with FileExistsError if it exists.
    A file system without hard links gets an O_EXCL create instead (the name is still taken once)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(mine)


def _read(path):
    """The holder "pid host" of a lock file; None once it is gone; "" for one that is not a lock."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return None
    parts = text.split()
    return text if len(parts) == 2 and parts[0].isascii() and parts[0].isdigit() else ""


def _stale(holder):
    """A lock of a process that no longer runs on this host (another host's lock is never judged)."""
    pid, host = holder.split()
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def _take_over(path, holder, log):
    """Move a stale lock aside (rename is atomic: of two processes taking it over, one moves it)."""
    aside = path.with_name(f"{path.name}.stale.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process moved it first
    try:
        if _read(aside) == holder:
            pid, host = holder.split()
            log(f"note: process {pid} on {host} left {path} behind and no longer runs: taking it over")
        else:  # a fresh lock replaced the stale one meanwhile: give it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)


# ----------------------------------------------------------------------------
# whose folder: the tools never write into a run folder they did not create

# What marks a run folder: train.py's and mlm.py's checkpoints, the metrics.json that train.py,
# mlm.py, ensemble.py and synth.py label write, the lock of a run still being written.
RUN_MARKS = ("metrics.json", "checkpoint.pt", "best.pt", LOCK)


def run_folder_of(path, itself=False):
    """(the nearest run folder that `path` lies inside, the mark found there), or None. With
    `itself`, `path` counts too (an output folder that must not be a run's, as against one the
    tool wrote before: synth.py label's --out is a run folder of its own)."""
    path = Path(path).resolve()
    for folder in [path, *path.parents][0 if itself else 1 :]:
        mark = next((m for m in RUN_MARKS if _holds(folder, m)), None)
        if mark:
            return folder, mark
    return None


def _holds(folder, mark):
    """Whether `folder` holds `mark`; a .lock only as `locked` writes it ("pid host"): other programs'
    .lock files (pytest's, in the folder holding its tmp_path folders) mark no run."""
    if mark != LOCK:
        return os.path.lexists(folder / mark)  # a link, even a broken one, counts
    try:
        return bool(_read(folder / mark))
    except OSError:  # a folder named .lock, one we may not read
        return False


def in_a_run(path, flag, itself=False):
    """Why a tool must not write to `path`, given as `flag` (None when it may): it lies inside a
    run folder (is one, with `itself`), which holds only what its own run wrote."""
    found = run_folder_of(path, itself)
    if found is None:
        return None
    folder, mark = found
    where = "is the run" if folder == Path(path).resolve() else "is inside the run"
    return f"{flag} {path} {where} {folder}: choose a folder outside it (a run's folder: it holds {mark})"
