"""Data parallelism across processes, for `torchrun --nproc_per_node N train.py ...`.

Every process holds a full copy of the model. Each step, every process takes the same global
batch (the batch streams and the schedule are seeded identically everywhere) and trains on its
own slice of it; DistributedDataParallel averages the gradients, so all copies take the same
AdamW step and stay equal. Only rank 0 prints and writes files.

Run on one machine (gloo on CPU, nccl on GPUs) or several, with torchrun's usual flags:

    torchrun --nproc_per_node 2 train.py --task all
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 train.py ...

Without torchrun (no RANK in the environment) everything here is a no-op for one process.

Every collective here puts its tensors on the run's device (`device()`): NCCL serves CUDA tensors
only, so an all-reduce of a CPU tensor there fails ("No backend type associated with device type
cpu"). tests/test_distributed.py checks this on a CPU with a group that serves one other device type.
"""

import os
import time

import torch
import torch.distributed as dist

_device = torch.device("cpu")  # the run's device, where collectives put their tensors (join_group sets it)


def join_group(device_type):
    """Join the process group if started by torchrun; returns (rank, world_size, device).
    Each process takes its own GPU (LOCAL_RANK) before it joins, and the NCCL group is bound to
    it, so no process opens a context on cuda:0 that it does not use."""
    device = torch.device(device_type)
    if "RANK" in os.environ and device_type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif "RANK" in os.environ:
        dist.init_process_group("gloo")
    set_device(device)
    return rank(), world(), device


def launched_world():
    """The number of processes torchrun started (WORLD_SIZE), known before join_group joins the group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank():
    """This process's RANK as torchrun set it (0 alone), known before join_group joins the group."""
    return int(os.environ.get("RANK", "0"))


def set_device(device):
    """Make `device` the one every collective below puts its tensors on (join_group calls this)."""
    global _device
    _device = torch.device(device)


def device():
    return _device


def active():
    return dist.is_available() and dist.is_initialized()


def rank():
    return dist.get_rank() if active() else 0


def world():
    return dist.get_world_size() if active() else 1


def is_main():
    return rank() == 0


def shard(indices):
    """This process's slice of a global batch (strided, so slices differ in size by at most 1)."""
    return indices[rank() :: world()]


def local_weight(n_local, n_global):
    """Scale for a local mean loss so that DDP's average over processes equals the mean over
    the global batch even when the slices differ in size: mean_global = sum_r n_r mean_r / n."""
    return n_local * world() / n_global


def all_sum(value):
    """Sum a number or a tensor over processes: a float64 tensor on the run's device (read it
    with .item() or .tolist()). For one process, the value as a tensor."""
    t = torch.as_tensor(value, dtype=torch.float64).to(device())
    if active():
        dist.all_reduce(t)
    return t


def all_mean_(tensor):
    """Average a tensor over processes, in place (for gradients DDP does not see)."""
    if active():
        dist.all_reduce(tensor)
        tensor /= world()
    return tensor


def gather(obj):
    """A list of every process's obj (in rank order); [obj] for one process. torch pickles obj
    into a tensor on the group's device: under NCCL the GPU join_group bound to this process."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def barrier():
    """Wait for every process: an all-reduce of one number on the run's device, which is what
    NCCL's own barrier does, written out so that it holds on every backend."""
    if active():
        dist.all_reduce(torch.zeros(1, device=device()))


def cleanup():
    """Leave the process group together: a process that tears down gloo while a peer still
    works (rank 0 writes the predictions) can abort at exit ("terminate called without an
    active exception"), so everyone waits for everyone first. The wait goes through the
    rendezvous store, not a collective: the last collective's final bytes may still be in
    flight to the peer when it returns, and closing the connection then aborts the peer.
    Once every process has checked in at the store, every collective has finished on every
    process. Rank 0 leaves last, since without torchrun it hosts the store."""
    if active():
        store = dist.distributed_c10d._get_default_store()
        store.add("minbert/cleanup/arrived", 1)
        _wait_for_count(store, "minbert/cleanup/arrived")
        store.add("minbert/cleanup/left", 1)
        if rank() == 0:
            _wait_for_count(store, "minbert/cleanup/left")
        dist.destroy_process_group()


def _wait_for_count(store, key):
    """Poll the store until every process has added 1 to `key`."""
    while store.add(key, 0) < world():
        time.sleep(0.01)
