"""`make data`: put the course files into a folder, from a local mirror or the course repository,
and check every row of each before it is used.

    python fetch_data.py --dest data --mirror ../shared/data   # what `make data` runs

Each file is copied or downloaded to a temporary name, validated (every row parses, the row
count is one the course files have), and only then renamed into place: a file that fails is
never left where train.py reads it. A file already in place that validates is kept. The
training and dev files are required; a test file that no mirror has and that cannot be
downloaded (an offline machine) is reported in one line, and the rest still works: train.py
then writes no test predictions for that task.
"""

import argparse
import itertools
import os
import sys
from pathlib import Path

import hub
from data import DataError, read_rows
from files import copy_file, remove_leftovers
from tasks import SPLITS, TASKS

BASE_URL = "https://raw.githubusercontent.com/gpoesia/minbert-default-final-project/main/data"


def course_files():
    """file name -> (task, split, accepted row counts or None), from the task table."""
    return {TASKS[t].files[s]: (t, s, TASKS[t].rows[s]) for t in TASKS for s in SPLITS}


def check_file(path, task, split, counts):
    """Validate every row of a course file and its row count; return the count."""
    examples, skipped = read_rows(path, task, labelled=split != "test")
    rows = len(examples) + len(skipped)
    if counts is not None and rows not in counts:
        expected = " or ".join(f"{n:,}" for n in counts)
        raise DataError(f"{path}: expected {expected} data rows, found {rows:,} (incomplete or wrong file?)")
    return rows


def _download(url, dest):
    try:
        hub.download(url, dest)
    except FileNotFoundError:
        raise DataError(f"{hub.without_credentials(url)}: not found (HTTP 404)") from None
    except hub.ModelFileError as e:
        reason = str(e).splitlines()[0]
        raise DataError(
            f"{reason}\nIf this machine is offline, copy the data files into a folder and run "
            "`make data DATA_MIRROR=/path/to/folder`"
        ) from None


def fetch_one(name, task, split, counts, dest, mirror, base_url):
    """Bring one file into dest (validated before it gets its real name); return a log line."""
    target = dest / name
    incoming = dest / f".{name}.{os.getpid()}.incoming"
    try:
        if mirror and (Path(mirror) / name).is_file():
            origin = Path(mirror) / name
            copy_file(origin, incoming)
            source = f"copied from {mirror}"
        else:
            origin = f"{base_url.rstrip('/')}/{name}"
            _download(origin, incoming)
            source = f"downloaded from {hub.without_credentials(origin)}"
        try:
            rows = check_file(incoming, task, split, counts)
        except DataError as e:  # name where the bad file came from, not its temporary name
            raise DataError(str(e).replace(str(incoming), hub.without_credentials(str(origin)))) from None
        os.replace(incoming, target)
    finally:  # the incoming name is this process's, so its bytes so far would never be asked for again
        incoming.unlink(missing_ok=True)
        hub.discard(hub.partial_path(incoming))
    return f"{name}: {source} ({rows:,} rows)"


def set_aside(target):
    """Move an invalid file out of train.py's way, kept (not deleted) for whoever wants to look: to
    NAME.invalid, or NAME.invalid.2, .3, ... when an earlier one is there (never replaced). Its name."""
    for n in itertools.count(1):
        kept = target.with_name(target.name + ".invalid" + (f".{n}" if n > 1 else ""))
        if not os.path.lexists(kept):
            os.replace(target, kept)
            return kept.name


def fetch(dest, mirror=None, base_url=BASE_URL, files=None):
    """Put each course file into `dest` and validate it. Returns the names of optional (test)
    files that could not be had; raises DataError for a required one."""
    dest, files = Path(dest), files or course_files()
    if dest.exists() and not dest.is_dir():
        raise DataError(f"--dest {dest}: a file, not a folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file on the way (--dest a.csv/data), no permission: one line naming the flag
        raise DataError(f"--dest {dest}: cannot make the folder ({e.strerror or e})") from None
    # what a fetch killed mid-file (kill -9) left: atomic_write's files and hub.download's partial ones
    remove_leftovers(dest, [".*.tmp", ".*.incoming.partial*"], min_age=300)
    if mirror and not Path(mirror).is_dir():
        print(f"mirror folder {mirror} not found; downloading from {base_url}")
        mirror = None
    missing = []
    for name, (task, split, counts) in files.items():
        target = dest / name
        if target.is_file():
            try:
                print(f"{name}: ok ({check_file(target, task, split, counts):,} rows)")
                continue
            except DataError as e:
                print(f"{name}: invalid, moved to {set_aside(target)} and fetching again ({e})")
        try:
            print(fetch_one(name, task, split, counts, dest, mirror, base_url))
        except DataError as e:
            if split != "test":
                raise
            missing.append(name)
            print(f"{name}: not available ({str(e).splitlines()[0]}); no {task} test predictions without it")
    return missing


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Put the course files into a folder and validate them.")
    parser.add_argument("--dest", default="data", help="folder to put the files in")
    parser.add_argument("--mirror", default=None, help="local folder to copy the files from, if it exists")
    parser.add_argument("--base-url", default=BASE_URL, help="where to download files the mirror lacks")
    args = parser.parse_args()
    try:
        fetch(args.dest, mirror=args.mirror, base_url=args.base_url)
    except DataError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # one line, as train.py's; exit 130 so that `make` stops too
        print("\nstopped (Ctrl-C); run it again to go on: the files in place that validate are kept", file=sys.stderr)
        sys.exit(130)
