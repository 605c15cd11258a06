"""Pieces the tests share: paths, a tiny encoder config, toy course files, a local HTTP server.

Every test runs offline: code that downloads (hub.py, fetch_data.py, synth.py) is pointed at a
server on 127.0.0.1 started by `serve`."""

import contextlib
import os
import random
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from minbert import BertConfig
from tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "tiny_bert"  # a tiny random BERT folder (make_fixtures.py), for training runs in seconds


# Tests run on the CPU. With MINBERT_TEST_DEVICE=cuda (make gpu-check sets it), the tests that take
# a device run on the GPU instead (make gpu-check runs a selection of them: gpu_check.DEVICE_TESTS).
DEVICE = torch.device(os.environ.get("MINBERT_TEST_DEVICE", "cpu"))
if DEVICE.type == "cpu":
    # A test that gives no --device runs train.py's default, auto: on a GPU machine that took the GPU
    # and bf16, and a comparison with CPU predictions at 1e-5 failed there. Hidden from this process
    # (CUDA has not started yet) and from every process a test starts, the GPUs leave auto on the CPU.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
# Float32 on a GPU sums in other orders (and SDPA picks other kernels) than on a CPU.
TOL = 1e-5 if DEVICE.type == "cpu" else 1e-4


@pytest.fixture(autouse=True)
def true_fp32():
    """Each test starts with TF32 off and leaves it so: a training run turns it on for CUDA
    (loop.use_tf32), and a later fp32 comparison with Hugging Face would see TF32's ~1e-3 errors."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    saved = [f.allow_tf32 for f in flags]
    for f in flags:
        f.allow_tf32 = False
    yield
    for f, value in zip(flags, saved):
        f.allow_tf32 = value


@contextlib.contextmanager
def exact_attention():
    """On a GPU, SDPA's fused kernels add up the attention gradient in a varying order, so two
    equal runs agree to rounding, not bit for bit. Tests that compare two runs exactly use the
    math kernel there (on a CPU every kernel is deterministic; nothing changes)."""
    if DEVICE.type == "cpu":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def small_config(**overrides):
    """A 2-layer, 32-wide encoder without dropout, for tests that compare two ways of computing it."""
    fields = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertConfig(**{**fields, **overrides})


# ----------------------------------------------------------------------------
# toy course files

WORDS = "the movie film story music cast plot actor scene show time life love fun heart dull smart cat dog man".split()
GOOD, BAD = ["good", "great", "funny", "charming", "witty"], ["bad", "sad", "dull", "long", "old"]


def sentence(rng, extra=()):
    return " ".join(rng.sample(WORDS, rng.randint(3, 8)) + list(extra)) + " ."


def write_course_file(path, header, rows):
    # The course layout: an unnamed index column first, tab-separated.
    lines = ["\t" + "\t".join(header)] + [f"{i}\t" + "\t".join(map(str, row)) for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def make_course_data(folder, n=48, seed=0):
    """Learnable toy tasks in the course formats: sentiment from good/bad words, paraphrase and
    similarity from word overlap."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n), ("dev", n // 2), ("test", n // 4)):
        sst, para, sts = [], [], []
        for i in range(size):
            label = rng.randint(0, 4)
            words = rng.sample(GOOD, 2) if label >= 3 else rng.sample(BAD, 2) if label <= 1 else []
            sst.append((f"s{split}{i}", sentence(rng, words), label))
            a = sentence(rng)
            same = rng.random() < 0.5
            b = a if same else sentence(rng)
            para.append((f"p{split}{i}", a, b, "1.0" if same else "0.0"))
            sts.append((f"t{split}{i}", a, b, 5.0 if same else round(rng.uniform(0, 2), 1)))
        labelled = split != "test"
        write_course_file(
            folder / TASKS["sst"].files[split],
            ["id", "sentence"] + ["sentiment"] * labelled,
            [r if labelled else r[:2] for r in sst],
        )
        write_course_file(
            folder / TASKS["para"].files[split],
            ["id", "sentence1", "sentence2"] + ["is_duplicate"] * labelled,
            [r if labelled else r[:3] for r in para],
        )
        write_course_file(
            folder / TASKS["sts"].files[split],
            ["id", "sentence1", "sentence2"] + ["similarity"] * labelled,
            [r if labelled else r[:3] for r in sts],
        )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_course_data(folder)
    return folder


# ----------------------------------------------------------------------------
# a local HTTP server


@contextlib.contextmanager
def serve(handler):
    """Serve `handler` (a BaseHTTPRequestHandler class) on 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------
# the mark of tests that need the packaged MiniLM


def pytest_configure(config):
    config.addinivalue_line("markers", "minilm: needs the packaged all-MiniLM-L6-v2 (gpu_check leaves it out without)")


def pytest_collection_modifyitems(items):
    """Tests that use the `minilm` fixture (the packaged model) get the mark `minilm`, so that
    `pytest -m "not minilm"` runs the rest where the package is not installed."""
    for item in items:
        if "minilm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.minilm)
