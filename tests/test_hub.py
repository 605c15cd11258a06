"""Downloading a model from a hub, against a local HTTP server on 127.0.0.1: success and
caching, 404, a connection dropped mid-file, no server at all."""

import gzip
import hashlib
import json
import os
import re
import signal
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

import hub
from minbert import BertModel

FIXTURES = Path(__file__).parent / "fixtures"


class Hub:
    """A tiny stand-in for huggingface.co: GET /<repo>/resolve/main/<file> serves files[repo][file].
    Paths in `drop` are announced in full but cut off halfway, then the connection closes; paths
    in `no_length` are sent without a Content-Length (and with `drop`, cut off unannounced); paths
    in `gzip` are sent gzip-encoded whatever the client asked; paths in `slow` trickle out 100
    bytes every 0.05 s. Like the hub, it sends an ETag (the content's hash) and answers a
    "Range: bytes=N-" request with the bytes from N on (206), if its If-Range is that ETag; paths
    in `no_range` ignore Range. `ranges` records each request's Range header (None without)."""

    def __init__(self):
        self.files, self.requests, self.ranges = {}, [], []
        self.drop, self.no_length, self.gzip, self.slow, self.no_range = set(), set(), set(), set(), set()
        self.wrong_range = set()  # paths answering any Range request with the bytes from 0 on (a 206)
        self.status = {}  # path -> the HTTP error it is answered with
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                owner.ranges.append(self.headers.get("Range"))
                if self.path in owner.status:
                    self.send_error(owner.status[self.path])
                    return
                parts = self.path.strip("/").split("/resolve/main/")
                body = owner.files.get(parts[0], {}).get(parts[-1]) if len(parts) == 2 else None
                if body is None:
                    self.send_error(404)
                    return
                etag, asked = f'"{hashlib.sha1(body).hexdigest()}"', self.headers.get("Range")
                if asked and self.path not in owner.no_range and self.headers.get("If-Range", etag) == etag:
                    first = 0 if self.path in owner.wrong_range else int(asked.removeprefix("bytes=").removesuffix("-"))
                    if first >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{len(body) - 1}/{len(body)}")
                    body = body[first:]
                else:
                    self.send_response(200)
                self.send_header("ETag", etag)
                if self.path in owner.gzip:
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                if self.path not in owner.no_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in owner.drop:
                    body = body[: len(body) // 2]
                if self.path in owner.slow:
                    for i in range(0, len(body), 100):
                        self.wfile.write(body[i : i + 100])
                        self.wfile.flush()
                        time.sleep(0.05)
                else:
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_model(self, repo, folder, skip=()):
        self.files[repo] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.name not in skip}


@pytest.fixture
def server():
    h = Hub()
    yield h
    h.server.shutdown()
    h.server.server_close()


def tiny_outputs(model):
    ref = np.load(FIXTURES / "tiny_ref.npz", allow_pickle=False)
    ids, mask, types = (torch.from_numpy(ref[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    with torch.no_grad():
        return model.eval()(ids, mask, types)["pooler_output"]


def test_download_then_reuse_cache(server, tmp_path):
    server.add_model("someone/tiny-bert", FIXTURES / "tiny_bert")
    model = BertModel.from_pretrained("someone/tiny-bert", cache_dir=tmp_path, base_url=server.url)
    reference = BertModel.from_pretrained(str(FIXTURES / "tiny_bert"))
    assert torch.equal(tiny_outputs(model), tiny_outputs(reference))
    folder = tmp_path / "someone--tiny-bert"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    n = len(server.requests)
    BertModel.from_pretrained("someone/tiny-bert", cache_dir=tmp_path, base_url=server.url)
    assert len(server.requests) == n  # everything came from the cache


def test_bin_weights_when_no_safetensors(server, tmp_path):
    server.add_model("tiny-bin", FIXTURES / "tiny_bert_bin")
    model = BertModel.from_pretrained("tiny-bin", cache_dir=tmp_path, base_url=server.url)
    assert (tmp_path / "tiny-bin" / "pytorch_model.bin").is_file()
    assert torch.allclose(tiny_outputs(model), tiny_outputs(BertModel.from_pretrained(str(FIXTURES / "tiny_bert"))))


def test_404_says_what_is_missing(server, tmp_path):
    with pytest.raises(hub.ModelFileError, match="no-such-model: config.json not found at http://127.0.0.1"):
        BertModel.from_pretrained("no-such-model", cache_dir=tmp_path, base_url=server.url)
    server.add_model("no-weights", FIXTURES / "tiny_bert", skip={"model.safetensors"})
    with pytest.raises(hub.ModelFileError, match=r"no weights at .* \(tried model.safetensors, pytorch_model.bin\)"):
        BertModel.from_pretrained("no-weights", cache_dir=tmp_path, base_url=server.url)


def test_a_dropped_connection_leaves_no_file_and_the_next_call_asks_for_the_rest(server, tmp_path):
    server.add_model("flaky", FIXTURES / "tiny_bert")
    path, size = "/flaky/resolve/main/model.safetensors", (FIXTURES / "tiny_bert" / "model.safetensors").stat().st_size
    server.drop.add(path)
    with pytest.raises(hub.ModelFileError, match="could not download .*model.safetensors"):
        BertModel.from_pretrained("flaky", cache_dir=tmp_path, base_url=server.url)
    folder = tmp_path / "flaky"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["config.json", "vocab.txt"]
    assert (folder / ".model.safetensors.partial").stat().st_size == size // 2  # kept for the next call
    server.drop.clear()  # the network recovers: the next call completes the download
    model = BertModel.from_pretrained("flaky", cache_dir=tmp_path, base_url=server.url)
    assert torch.equal(tiny_outputs(model), tiny_outputs(BertModel.from_pretrained(str(FIXTURES / "tiny_bert"))))
    assert server.ranges[-1] == f"bytes={size // 2}-"  # only the missing half was sent again
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]


def test_a_partial_download_starts_over_when_the_file_changed_or_the_server_ignores_ranges(server, tmp_path):
    old, new = bytes(range(200)) * 10, bytes(reversed(range(200))) * 10
    url, dest = f"{server.url}/r/resolve/main/w.bin", tmp_path / "w.bin"
    server.files["r"] = {"w.bin": old}
    server.drop.add("/r/resolve/main/w.bin")
    with pytest.raises(hub.ModelFileError, match="could not download .*w.bin: .*1000 bytes read"):
        hub.download(url, dest)
    server.drop.clear()
    server.files["r"]["w.bin"] = new  # a new revision: the ETag differs, so the server sends it whole
    hub.download(url, dest)
    assert dest.read_bytes() == new and server.ranges[-1] == "bytes=1000-"
    server.files["r"]["w.bin"], server.drop = old, {"/r/resolve/main/w.bin"}
    with pytest.raises(hub.ModelFileError):
        hub.download(url, tmp_path / "v.bin")
    server.drop.clear()
    server.no_range.add("/r/resolve/main/w.bin")  # a server without Range: a 200 with the whole file
    hub.download(url, tmp_path / "v.bin")
    assert (tmp_path / "v.bin").read_bytes() == old


def test_a_206_that_is_not_the_rest_is_refused_and_the_next_call_starts_over(server, tmp_path):
    body = bytes(range(200)) * 10
    url, dest, path = f"{server.url}/r/resolve/main/w.bin", tmp_path / "w.bin", "/r/resolve/main/w.bin"
    server.files["r"] = {"w.bin": body}
    server.drop.add(path)
    with pytest.raises(hub.ModelFileError):
        hub.download(url, dest)
    server.drop.clear()
    server.wrong_range.add(path)  # the first 2000 bytes again, as "the rest": appended, a 3000-byte file
    with pytest.raises(
        hub.ModelFileError, match=r"asked for the bytes from 1000 on, the server sent 'bytes 0-1999/2000'"
    ):
        hub.download(url, dest)
    assert not dest.exists()
    hub.download(url, dest)  # nothing kept to go on from: a plain request, the whole file
    assert dest.read_bytes() == body and server.ranges[-1] is None


def test_a_partial_file_that_fails_its_check_is_deleted(server, tmp_path):
    server.files["r"] = {"config.json": b"{ not json"}
    with pytest.raises(hub.ModelFileError, match="config.json: not valid JSON"):
        hub.download(f"{server.url}/r/resolve/main/config.json", tmp_path / "config.json", check=hub._check_json)
    assert not list(tmp_path.iterdir())  # its bytes are wrong, not missing: nothing to go on from


def test_a_lock_that_cannot_be_taken_is_one_error_at_once_not_a_wait(server, tmp_path):
    server.files["r"] = {"config.json": b"{}"}
    (tmp_path / ".config.json.lock").write_text("not a pid and host")  # nobody holds it: no one to wait for
    with pytest.raises(hub.ModelFileError, match=r"could not download .*config.json: .*not a lock"):
        hub.download(f"{server.url}/r/resolve/main/config.json", tmp_path / "config.json", deadline=30)


def test_two_downloads_of_one_file_at_once_fetch_it_once(server, tmp_path):
    """torchrun's processes resolve the model together: one downloads, the others wait for it."""
    server.files["r"] = {"big.bin": bytes(range(256)) * 8}
    server.slow.add("/r/resolve/main/big.bin")
    url, dest = f"{server.url}/r/resolve/main/big.bin", tmp_path / "big.bin"
    threads = [threading.Thread(target=hub.download, args=(url, dest)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert server.requests.count("/r/resolve/main/big.bin") == 1
    assert dest.read_bytes() == bytes(range(256)) * 8 and sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


def test_offline_error_suggests_a_local_folder(tmp_path):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()  # nothing listens there any more
    with pytest.raises(hub.ModelFileError, match="could not download") as e:
        BertModel.from_pretrained("bert-base-uncased", cache_dir=tmp_path, base_url=url)
    assert "pass its path instead" in str(e.value) and "--model /path/to/bert-base-uncased" in str(e.value)


def test_a_mistyped_folder_is_named_as_a_folder_too_and_leaves_no_cache_folder(tmp_path):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()
    # "runs/mlmm" reads as a hub id as well as a folder: the error once spoke of the hub alone
    with pytest.raises(
        hub.ModelFileError, match=r"^no model folder runs/mlmm here, nor on the hub: could not download"
    ):
        hub.resolve_model_dir("runs/mlmm", cache_dir=tmp_path / "cache", base_url=url)
    assert list((tmp_path / "cache").iterdir()) == []  # (an empty runs--mlmm was left there)


def test_cache_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MINBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINBERT_HUB_URL", server.url)
    server.add_model("env-model", FIXTURES / "tiny_bert")
    assert hub.resolve_model_dir("env-model") == tmp_path / "cache" / "env-model"


# ----------------------------------------------------------------------------
# nothing half-downloaded enters the cache


def test_truncated_download_without_length_is_not_cached(server, tmp_path):
    server.add_model("cut", FIXTURES / "tiny_bert")
    for name in ("vocab.txt", "model.safetensors"):
        path = f"/cut/resolve/main/{name}"
        server.no_length.add(path)  # no Content-Length: the early close looks like a normal end of the file
        server.drop.add(path)
        with pytest.raises(
            hub.ModelFileError, match=rf"could not download .*/cut/resolve/main/{name}: .*\(not cached\)"
        ):
            hub.resolve_model_dir("cut", cache_dir=tmp_path, base_url=server.url)
        assert not (tmp_path / "cut" / name).exists()
        assert not [p for p in (tmp_path / "cut").iterdir() if p.name.endswith(".tmp")]
        server.drop.clear()
    assert hub.resolve_model_dir("cut", cache_dir=tmp_path, base_url=server.url) == tmp_path / "cut"


def test_invalid_cached_file_is_fetched_again(server, tmp_path, capsys):
    server.add_model("m", FIXTURES / "tiny_bert")
    folder = hub.resolve_model_dir("m", cache_dir=tmp_path, base_url=server.url)
    vocab = (folder / "vocab.txt").read_text()
    half = "".join(vocab.splitlines(keepends=True)[:10])
    (folder / "vocab.txt").write_text(half)  # as an older version, trusting the connection, cached it
    hub.resolve_model_dir("m", cache_dir=tmp_path, base_url=server.url)
    assert "vocab.txt: 10 entries, but config.json has vocab_size" in capsys.readouterr().err
    assert (folder / "vocab.txt").read_text() == vocab  # fetched again, whole

    (folder / "vocab.txt").write_text(half)
    server.files["m"]["vocab.txt"] = half.encode()  # and the hub now serves a bad file too
    with pytest.raises(hub.ModelFileError, match=r"could not download .*vocab.txt: 10 entries.*\(not cached\)"):
        hub.resolve_model_dir("m", cache_dir=tmp_path, base_url=server.url)
    assert not (folder / "vocab.txt").exists()  # the bad copy is gone: the next run fetches it again
    server.files["m"]["vocab.txt"] = vocab.encode()
    assert hub.resolve_model_dir("m", cache_dir=tmp_path, base_url=server.url) == folder


def test_vocab_entries_are_counted_as_the_tokenizer_reads_them(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nx\x85y\na\u2028b\n[UNK]\n[CLS]\n[SEP]", encoding="utf-8")  # 6 lines; splitlines(): 8
    hub.check_vocab(path, {"vocab_size": 6}, exact=True)
    with pytest.raises(hub.ModelFileError, match="6 entries, but config.json has vocab_size 5"):
        hub.check_vocab(path, {"vocab_size": 5})
    # A byte-order mark made the first entry "\ufeff[PAD]", and the tokenizer then said [PAD] was
    # missing, in a traceback; a missing special token is named here, in one line.
    path.write_text("\ufeff[PAD]\n[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    with pytest.raises(hub.ModelFileError, match="starts with a byte-order mark"):
        hub.check_vocab(path, {"vocab_size": 6})
    path.write_text("[PAD]\n[UNK]\n[CLS]\n", encoding="utf-8")
    with pytest.raises(hub.ModelFileError, match="missing the special token \\[SEP\\]"):
        hub.check_vocab(path, {"vocab_size": 6})


def test_a_config_with_a_dropout_that_is_not_a_rate_is_one_line(tmp_path):
    config = json.loads((FIXTURES / "tiny_bert" / "config.json").read_text())
    for bad in (None, "0.1", 1.5):  # (None was a TypeError deep in the first forward)
        (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": bad}))
        with pytest.raises(hub.ModelFileError, match="hidden_dropout_prob must be a number in \\[0, 1\\)"):
            hub.read_config(tmp_path / "config.json")


def test_gzip_encoded_response_is_accepted(server, tmp_path):
    server.add_model("zipped", FIXTURES / "tiny_bert")
    server.gzip.update(f"/zipped/resolve/main/{name}" for name in server.files["zipped"])
    folder = hub.resolve_model_dir("zipped", cache_dir=tmp_path, base_url=server.url)
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        assert (folder / name).read_bytes() == (FIXTURES / "tiny_bert" / name).read_bytes()


def test_slow_server_shows_progress_and_meets_a_deadline(server, tmp_path, capsys):
    server.files["r"] = {"big.bin": bytes(3000)}  # 30 pieces of 100 bytes, 0.05 s apart: about 1.5 s
    server.slow.add("/r/resolve/main/big.bin")
    hub.download(f"{server.url}/r/resolve/main/big.bin", tmp_path / "big.bin", chunk_size=1000)
    assert "downloading big.bin: 0.0/0.0 MB" in capsys.readouterr().err
    with pytest.raises(hub.ModelFileError, match=r"big.bin: not complete after 0.5 s"):
        hub.download(f"{server.url}/r/resolve/main/big.bin", tmp_path / "late.bin", chunk_size=100, deadline=0.5)
    assert not (tmp_path / "late.bin").exists()  # its bytes so far wait in .late.bin.partial
    hub.download(f"{server.url}/r/resolve/main/big.bin", tmp_path / "late.bin", chunk_size=100)
    assert (tmp_path / "late.bin").read_bytes() == bytes(3000) and server.ranges[-1] is not None


def test_a_trickling_server_meets_the_deadline_at_the_default_chunk_size(server, tmp_path):
    """Each read takes what has come, so the deadline is checked as bytes arrive: a 64 KiB read
    waited for the whole file, however slowly it came."""
    server.files["r"] = {"huge.bin": bytes(20000)}  # 200 pieces of 100 bytes, 0.05 s apart: 10 s in all
    server.slow.add("/r/resolve/main/huge.bin")
    with pytest.raises(hub.ModelFileError, match=r"not complete after 0.5 s") as stop:
        hub.download(f"{server.url}/r/resolve/main/huge.bin", tmp_path / "huge.bin", deadline=0.5)
    done = int(re.search(r"\((\d+) bytes\)", str(stop.value)).group(1))
    assert done < 20000  # stopped at the deadline, not once the whole file was in
    assert not (tmp_path / "huge.bin").exists()


def test_an_http_error_is_not_called_unreachable(server, tmp_path):
    server.files["gated"] = {"config.json": b"{}"}
    server.status["/gated/resolve/main/config.json"] = 401
    with pytest.raises(hub.ModelFileError, match=r"config.json: HTTP 401 Unauthorized") as stop:
        hub.download(f"{server.url}/gated/resolve/main/config.json", tmp_path / "config.json")
    assert not isinstance(stop.value, hub.Unreachable)  # whose message would say "if this machine is offline"


def test_a_download_killed_halfway_goes_on_from_its_bytes_on_the_next_fetch(server, tmp_path):
    server.add_model("k", FIXTURES / "tiny_bert")
    server.slow.add("/k/resolve/main/model.safetensors")
    folder = tmp_path / "k"
    pid = os.fork()
    if pid == 0:  # the child downloads, and is killed halfway (SIGKILL: no cleanup runs)
        try:
            hub.resolve_model_dir("k", cache_dir=tmp_path, base_url=server.url)
        finally:
            os._exit(0)
    partial, deadline = folder / ".model.safetensors.partial", time.time() + 60
    while not (partial.is_file() and partial.stat().st_size >= 1000) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    had = partial.stat().st_size
    assert (folder / ".model.safetensors.lock").is_file()  # the killed process's: stale, taken over
    server.slow.clear()
    hub.resolve_model_dir("k", cache_dir=tmp_path, base_url=server.url)
    assert server.ranges[-1] == f"bytes={had}-"
    weights = (FIXTURES / "tiny_bert" / "model.safetensors").read_bytes()
    assert (folder / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]


def test_temporary_files_orphaned_by_a_kill_are_removed_on_the_next_fetch(server, tmp_path):
    server.add_model("k", FIXTURES / "tiny_bert")
    folder = tmp_path / "k"
    folder.mkdir()
    orphan = folder / ".model.safetensors.partial.etag.abcd.tmp"  # atomic_write's, of a killed process
    live = folder / ".vocab.txt.another-download.tmp"  # a download in progress elsewhere: recently written
    orphan.write_bytes(b"x")
    live.write_bytes(b"x")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))  # an hour old
    hub.resolve_model_dir("k", cache_dir=tmp_path, base_url=server.url)
    assert not orphan.exists() and live.exists()


# ----------------------------------------------------------------------------
# a bad model folder is one clear line


def tiny_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for p in (FIXTURES / "tiny_bert").iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def safetensors_with_header(header_text, body=b""):
    raw = header_text.encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize(
    "header, message",
    [
        ("[" * 100000 + "]" * 100000, "malformed safetensors header"),  # nesting deep enough to overflow the parser
        ('{"w": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 4]}}', "(Exceeds the limit"),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 99999999999999999999999]}}', "lie outside"),
        ('{"w": {"dtype": "F32", "shape": [1e3], "data_offsets": [0, 4]}}', "invalid shape"),
        ('{"w": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}', "invalid shape"),
        ('{"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}', "unknown dtype"),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4]}}', "invalid data_offsets"),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "v": [1]}', "malformed entry"),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', "gap at byte 0"),
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', "fill 4 of the 12-byte data section"),
    ],
)
def test_malformed_safetensors_header_is_one_line(tmp_path, header, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_with_header(header, bytes(12)))
    with pytest.raises(hub.ModelFileError) as e:
        hub.load_safetensors(path)
    assert message in str(e.value) and "\n" not in str(e.value) and "set_int_max_str_digits" not in str(e.value)


def break_config(**change):
    def apply(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **change}))

    return apply


def append_vocab(folder):
    with open(folder / "vocab.txt", "a") as f:
        f.write("extra-entry\n")


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: [p.unlink() for p in f.iterdir()], "missing config.json"),
        (lambda f: (f / "config.json").write_text('{"hidden_size": 32,'), "config.json: not valid JSON"),
        (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json: expected a JSON object"),
        (break_config(hidden_size="big"), "hidden_size must be a positive integer"),
        (break_config(model_type="gpt2"), "model_type 'gpt2' is not a BERT model"),
        (break_config(hidden_size=64, num_attention_heads=4), "does not match config.json: "),
        (break_config(hidden_size=30), "hidden_size 30 is not a multiple of num_attention_heads"),
        (lambda f: (f / "tokenizer_config.json").write_text("{"), "tokenizer_config.json: not valid JSON"),
        (lambda f: (f / "vocab.txt").unlink(), "missing vocab.txt"),
        (append_vocab, "entries, but config.json has vocab_size"),
        (lambda f: (f / "vocab.txt").write_bytes(b"[PAD]\n\xff\n"), "vocab.txt: not UTF-8"),
        (lambda f: (f / "model.safetensors").write_bytes(b""), "truncated safetensors file (0 bytes"),
        (lambda f: (f / "model.safetensors").write_bytes(os.urandom(4096)), "model.safetensors: "),
        (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-100]), "data"),
    ],
)
def test_bad_model_folder_is_one_clear_line(tmp_path, breakage, message):
    folder = tiny_folder(tmp_path)
    breakage(folder)
    with pytest.raises(hub.ModelFileError) as e:
        BertModel.from_pretrained(str(folder))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)[:300]


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://alice:p@ss@host/x", "https://[credentials]@host/x"),  # an unescaped @ in the password
        ("ftp://u:pw@h:8/x", "ftp://[credentials]@h:8/x"),
        ("u:pw@host/x", "[credentials]@host/x"),  # no scheme
        ("http://host/a@b", "http://host/a@b"),  # an @ in the path, the query or the fragment is no password
        ("http://host?q=a@b", "http://host?q=a@b"),
        ("http://host#f@g", "http://host#f@g"),
        ("http://h/x", "http://h/x"),
    ],
)
def test_without_credentials_blanks_user_and_password_only(url, shown):
    assert hub.without_credentials(url) == shown  # synth.py's Client shows its --base-url through it too
