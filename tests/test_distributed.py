"""torchrun with two CPU processes (gloo) trains the same model as one process with the same
global batch: every step each process takes half of the batch and DDP averages the gradients.
And the collectives follow NCCL's rule (tensors on the run's device), checked on the CPU."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT, TINY, make_course_data

import distributed
from minbert import BertModel


def train_cmd(data_dir, out, *extra):
    # Dropout off: the processes draw their own dropout masks, so only a deterministic model can match exactly.
    return [
        "train.py",
        "--model",
        str(TINY),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--steps-per-epoch",
        "5",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--dropout",
        "0",
        "--encoder-dropout",
        "0",
        "--eval-subset",
        "0",
        "--log-every",
        "5",
        "--device",
        "cpu",  # gloo on the CPU, also on a GPU machine (which may have fewer GPUs than processes)
        *extra,
    ]


CANDIDATES = ["--ema", "0.9", "--layer-lr-decay", "0.8", "--label-smoothing", "0.1", "--rdrop", "1"]  # issue 29


@pytest.mark.parametrize(
    "extra",
    [[], ["--schedule", "summed"], ["--schedule", "summed", "--pcgrad"], ["--task", "sst"], CANDIDATES],
    ids=["annealed", "summed", "pcgrad", "sst-alone", "candidates"],
)
def test_two_processes_match_one(tmp_path, extra):
    make_course_data(tmp_path / "data", n=36)  # 36 % 8 = 4: the tail batch splits 2 + 2
    single = subprocess.run(
        [sys.executable, *train_cmd(tmp_path / "data", tmp_path / "one", *extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    double = subprocess.run(
        [*torchrun, *train_cmd(tmp_path / "data", tmp_path / "two", *extra)], cwd=ROOT, capture_output=True, text=True
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("done in") == 1  # only rank 0 prints

    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert one["state"]["seen"] == two["state"]["seen"]  # the same global batches
    assert len(two["rng"]) == 2 and not torch.equal(two["rng"][0]["cpu"], two["rng"][1]["cpu"])  # each its own
    for k, v in one["model"].items():
        w = two["model"][k]
        if k.endswith("attn.qkv.bias"):
            # The key bias shifts every attention logit of a query equally, so softmax ignores it
            # and its true gradient is 0. What autograd returns is rounding noise, which Adam
            # normalises into lr-sized steps that differ with the summation order. Compare the
            # query and value biases exactly; the key bias only within the steps' reach.
            H = v.numel() // 3
            assert (w[H : 2 * H] - v[H : 2 * H]).abs().max() <= 1e-3 * 10 * 1.01
            w, v = torch.cat([w[:H], w[2 * H :]]), torch.cat([v[:H], v[2 * H :]])
        torch.testing.assert_close(w, v, atol=2e-5, rtol=1e-4, msg=k)
    start = BertModel.from_pretrained(str(TINY)).state_dict()
    assert (
        one["model"]["bert.layers.1.ffn_out.weight"] - start["layers.1.ffn_out.weight"]
    ).abs().max() > 1e-3  # it trained
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for task, value in m1["dev"].items():
        assert abs(m2["dev"][task] - value) < 1e-3, task
    assert Path(tmp_path / "two" / "predictions" / "sst-dev-output.csv").read_text().count("\n") == 18 + 1


def test_one_pair_task_with_mean_pooling_trains_past_step_two(tmp_path):
    # Mean pooling leaves BERT's pooler out of the loss: DDP must not wait for its gradient.
    make_course_data(tmp_path / "data", n=36)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = train_cmd(tmp_path / "data", tmp_path / "run", "--task", "sts", "--pooling", "mean", "--no-report")
    done = subprocess.run([*torchrun, *cmd], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 5/5" in done.stdout


def test_a_dev_set_smaller_than_the_processes_is_scored(tmp_path):
    # --eval-subset 1: one process predicts the row, the other none; sst's (0,) beside (1, 5) raw
    # outputs broke the gather with a ValueError.
    make_course_data(tmp_path / "data", n=36)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = train_cmd(tmp_path / "data", tmp_path / "run", "--task", "sst", "--eval-subset", "1", "--no-report")
    done = subprocess.run([*torchrun, *cmd, "--epochs", "1"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done in" in done.stdout


# ----------------------------------------------------------------------------
# NCCL's rule, on a CPU: a group that serves one device type only


def collectives_on(rank, port):
    """One of two processes in a group whose only backend serves CUDA tensors, as NCCL's does.
    The run's device is "meta", the one non-CPU device a CPU build of torch has: the collectives'
    meta kernels check where each tensor lives but carry no values (the tests above check those)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("cuda:gloo", rank=rank, world_size=2)
    try:
        with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
            dist.all_reduce(torch.ones(1))  # the failure NCCL gives a CPU tensor
        distributed.set_device("meta")
        stop = distributed.all_sum(1.0)  # the stop flag: a host number
        rows = distributed.all_sum(torch.ones(3, 4))  # the logged losses
        assert (stop.device.type, stop.shape, rows.device.type, rows.shape) == ("meta", (), "meta", (3, 4))
        grad = torch.ones(5, device="meta")
        assert distributed.all_mean_(grad) is grad  # PCGrad's reduce and the heads' gradients
        distributed.barrier()
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_collective_uses_the_run_device():
    # (distributed.gather is torch's all_gather_object: under NCCL it uses the GPU that join_group
    # bound to the group, and it cannot run on meta, which holds no bytes to unpickle.)
    mp.spawn(collectives_on, args=(free_port(),), nprocs=2)


def test_shard_strides_and_local_weight_rescales_uneven_slices(monkeypatch):
    """7 examples over 3 processes, by hand: strided slices of 3, 2, 2; each local mean weighted by
    n_r * world / n, so DDP's average over processes of weight * local mean is the global mean."""
    monkeypatch.setattr(distributed, "world", lambda: 3)
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    slices, averaged = [], 0.0
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        part = distributed.shard(list(range(7)))
        slices.append(part)
        averaged += distributed.local_weight(len(part), 7) * values[part].mean().item() / 3
    assert slices == [[0, 3, 6], [1, 4], [2, 5]]
    assert distributed.local_weight(3, 7) == pytest.approx(9 / 7)
    assert averaged == pytest.approx(values.mean().item())
