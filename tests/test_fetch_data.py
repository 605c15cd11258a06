"""Tests for fetch_data.py (`make data`): from a mirror folder and from a local HTTP server,
validation before a file takes its real name, and optional test files."""

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, serve

import fetch_data
from data import DataError

SST_HEADER = "\tid\tsentence\tsentiment\n"
PAIR_HEADER = "\tid\tsentence1\tsentence2\t{}\n"


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


TINY_FILES = {  # name -> (task, split, accepted row counts)
    "sst-train.csv": ("sst", "train", (3,)),
    "sst-test.csv": ("sst", "test", (2,)),
    "quora-dev.csv": ("para", "dev", (2, 50)),
}


def write_tiny_course(folder):
    folder.mkdir(parents=True, exist_ok=True)
    write(folder, "sst-train.csv", SST_HEADER + '0\ta\t"a ""b"" c"\t1\n1\tb\tx\t0.0\n2\tc\ty\t4\n')
    write(folder, "sst-test.csv", "0\t\tid\tsentence\n1\t0.0\ta\tx\n2\t1.0\tb\ty\n")
    write(folder, "quora-dev.csv", PAIR_HEADER.format("is_duplicate") + "0\ta\tx\ty\t1.0\n1\tb\tx\ty\t\n")
    return folder


def test_fetch_from_mirror_is_idempotent_and_repairs(tmp_path, capsys):
    mirror, dest = write_tiny_course(tmp_path / "mirror"), tmp_path / "data"
    fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    out = capsys.readouterr().out
    assert out.count("copied from") == 3
    for name in TINY_FILES:
        assert (dest / name).read_bytes() == (mirror / name).read_bytes()

    fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    assert capsys.readouterr().out.count(": ok (") == 3

    (dest / "sst-train.csv").write_text(SST_HEADER + "0\ta\tx\t1\n")  # truncated: 1 row, not 3
    fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    out = capsys.readouterr().out
    assert "sst-train.csv: invalid, moved to sst-train.csv.invalid and fetching again" in out
    assert out.count("copied from") == 1 and (dest / "sst-train.csv.invalid").is_file()
    assert (dest / "sst-train.csv").read_bytes() == (mirror / "sst-train.csv").read_bytes()
    # a second invalid version is kept beside the first, which it once replaced without a word
    (dest / "sst-train.csv").write_text(SST_HEADER + "0\ta\tx\t2\n")
    fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    assert "moved to sst-train.csv.invalid.2" in capsys.readouterr().out
    assert (dest / "sst-train.csv.invalid").read_text() == SST_HEADER + "0\ta\tx\t1\n"
    assert (dest / "sst-train.csv.invalid.2").read_text() == SST_HEADER + "0\ta\tx\t2\n"
    with pytest.raises(DataError, match=r"--dest .*sst-train\.csv: a file, not a folder"):
        fetch_data.fetch(dest / "sst-train.csv", mirror=mirror, files=TINY_FILES)

    with pytest.raises(DataError, match=r"sst-train\.csv: expected 5 or 6 data rows, found 3"):
        fetch_data.fetch(tmp_path / "other", mirror=mirror, files={"sst-train.csv": ("sst", "train", (5, 6))})


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests_seen = []

    def do_GET(self):
        self.requests_seen.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    write_tiny_course(root / "data")
    CountingHandler.requests_seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/data", root / "data"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_over_http(tmp_path, server, capsys):
    base_url, served = server
    dest = tmp_path / "data"
    fetch_data.fetch(dest, mirror=tmp_path / "no-such-mirror", base_url=base_url, files=TINY_FILES)
    out = capsys.readouterr().out
    assert "mirror folder" in out and out.count("downloaded from") == 3
    assert sorted(CountingHandler.requests_seen) == sorted(f"/data/{name}" for name in TINY_FILES)
    assert (dest / "quora-dev.csv").read_bytes() == (served / "quora-dev.csv").read_bytes()

    fetch_data.fetch(dest, base_url=base_url, files=TINY_FILES)  # everything valid: nothing fetched
    assert len(CountingHandler.requests_seen) == 3
    assert capsys.readouterr().out.count(": ok (") == 3

    missing = {"sts-dev.csv": ("sts", "dev", (1,))}
    with pytest.raises(DataError, match=rf"{base_url}/sts-dev\.csv: not found \(HTTP 404\)"):
        fetch_data.fetch(dest, base_url=base_url, files=missing)
    assert not (dest / "sts-dev.csv").exists()


def test_fetch_offline_suggests_a_mirror(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=r"(?s)127\.0\.0\.1:\d+/sst-dev\.csv.*make data DATA_MIRROR="):
        fetch_data.fetch(tmp_path, base_url=f"http://127.0.0.1:{port}", files={"sst-dev.csv": ("sst", "dev", (2,))})


def test_a_file_that_fails_validation_never_takes_its_real_name(tmp_path):
    mirror, dest = write_tiny_course(tmp_path / "mirror"), tmp_path / "data"
    write(mirror, "sst-train.csv", SST_HEADER + "0\ta\tx\t1\n")  # 1 row, 3 expected
    with pytest.raises(DataError, match=r"mirror/sst-train\.csv: expected 3 data rows, found 1"):
        fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    assert sorted(p.name for p in dest.iterdir()) == []  # nothing where train.py would read it, no temp file


def test_a_test_file_nobody_has_is_reported_and_the_rest_still_fetched(tmp_path, capsys):
    mirror, dest = write_tiny_course(tmp_path / "mirror"), tmp_path / "data"
    (mirror / "sst-test.csv").unlink()
    with socket.socket() as s:  # a port that nothing listens on: offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    missing = fetch_data.fetch(dest, mirror=mirror, base_url=f"http://127.0.0.1:{port}", files=TINY_FILES)
    assert missing == ["sst-test.csv"]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sst-test.csv")]
    assert len(lines) == 1 and "not available" in lines[0] and "no sst test predictions" in lines[0]
    assert "--model" not in lines[0]  # a data file: no advice about model folders
    assert (dest / "sst-train.csv").is_file() and (dest / "quora-dev.csv").is_file()


def test_course_files_come_from_the_task_table():
    files = fetch_data.course_files()
    assert len(files) == 9 and files["quora-test-student.csv"] == ("para", "test", None)
    assert files["ids-sst-dev.csv"] == ("sst", "dev", (1101,))


def test_a_dest_that_cannot_be_made_is_one_line_naming_the_flag(tmp_path):
    mirror = write_tiny_course(tmp_path / "mirror")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match=r"--dest .*a-file/data: cannot make the folder \(Not a directory\)"):
        fetch_data.fetch(tmp_path / "a-file" / "data", mirror=mirror, files=TINY_FILES)


def test_credentials_in_the_base_url_are_never_printed(tmp_path, server, capsys):
    base_url, _ = server
    with_password = base_url.replace("http://", "http://alice:s3cret-pw@")
    fetch_data.fetch(tmp_path / "data", base_url=with_password, files=TINY_FILES)
    missing = {"sts-dev.csv": ("sts", "dev", (1,))}
    with pytest.raises(DataError) as not_found:
        fetch_data.fetch(tmp_path / "data", base_url=with_password, files=missing)
    with socket.socket() as s:  # a port that nothing listens on: offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as offline:
        fetch_data.fetch(tmp_path / "x", base_url=f"http://alice:s3cret-pw@127.0.0.1:{port}", files=missing)
    shown = capsys.readouterr().out + str(not_found.value) + str(offline.value)
    assert "s3cret-pw" not in shown and shown.count("[credentials]@") == 5  # 3 downloads, 2 errors


class Trickle(http.server.BaseHTTPRequestHandler):
    """A download that never ends: a byte every 50 ms of an announced megabyte."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client hung up
            for _ in range(1 << 20):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)

    def log_message(self, *args):
        pass


def test_ctrl_c_during_a_download_is_one_line_and_exit_130(tmp_path):
    # `make data` printed KeyboardInterrupt's traceback from deep inside socket.recv_into.
    dest = tmp_path / "data"
    with serve(Trickle) as url:
        argv = [sys.executable, "fetch_data.py", "--dest", str(dest), "--base-url", url]
        child = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not any(dest.glob(".*.partial")):  # downloading
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err, err
    assert "stopped (Ctrl-C)" in err
    assert not list(dest.iterdir())  # nothing half-downloaded is left


def test_temporary_files_of_a_killed_fetch_are_removed_once_no_writer_is_left(tmp_path):
    """kill -9 mid-file leaves atomic_write's temporary file; the next fetch removes one untouched
    for 5 minutes (files.remove_leftovers) and keeps a fresh one, which a fetch running beside may own."""
    mirror, dest = write_tiny_course(tmp_path / "mirror"), tmp_path / "data"
    dest.mkdir()
    old, fresh = dest / ".ids-sst-train.csv.123.incoming.abcd.tmp", dest / ".sts-dev.csv.456.incoming.ef.tmp"
    partial = dest / "..sts-dev.csv.789.incoming.partial"  # hub.download's bytes so far, of that process
    for path in (old, fresh, partial):
        path.write_text("half a file")
    for path in (old, partial):
        os.utime(path, (time.time() - 600, time.time() - 600))
    fetch_data.fetch(dest, mirror=mirror, files=TINY_FILES)
    assert not old.exists() and not partial.exists() and fresh.exists()
