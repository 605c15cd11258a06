"""Downloading a model from a hub, against a local HTTP server on 127.0.0.1: success and
caching, 404, a connection dropped mid-file, no server at all."""

import threading
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
    Files listed in `drop` are announced in full but cut off halfway, then the connection closes."""

    def __init__(self):
        self.files, self.drop, self.requests = {}, set(), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                parts = self.path.strip("/").split("/resolve/main/")
                body = owner.files.get(parts[0], {}).get(parts[-1]) if len(parts) == 2 else None
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in owner.drop:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

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


def test_dropped_connection_leaves_no_file(server, tmp_path):
    server.add_model("flaky", FIXTURES / "tiny_bert")
    server.drop.add("/flaky/resolve/main/model.safetensors")
    with pytest.raises(hub.ModelFileError, match="could not download .*model.safetensors"):
        BertModel.from_pretrained("flaky", cache_dir=tmp_path, base_url=server.url)
    left = sorted(p.name for p in (tmp_path / "flaky").iterdir())
    assert left == ["config.json", "vocab.txt"]  # no partial weights, no temporary file
    server.drop.clear()  # the network recovers: the next call completes the download
    model = BertModel.from_pretrained("flaky", cache_dir=tmp_path, base_url=server.url)
    assert torch.equal(tiny_outputs(model), tiny_outputs(BertModel.from_pretrained(str(FIXTURES / "tiny_bert"))))


def test_offline_error_suggests_a_local_folder(tmp_path):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()  # nothing listens there any more
    with pytest.raises(hub.ModelFileError, match="could not download") as e:
        BertModel.from_pretrained("bert-base-uncased", cache_dir=tmp_path, base_url=url)
    assert "pass its path instead" in str(e.value) and "--model /path/to/bert-base-uncased" in str(e.value)


def test_cache_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MINBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINBERT_HUB_URL", server.url)
    server.add_model("env-model", FIXTURES / "tiny_bert")
    assert hub.resolve_model_dir("env-model") == tmp_path / "cache" / "env-model"
