"""Data parallelism across processes, for `torchrun --nproc_per_node N train.py ...`.

Every process holds a full copy of the model. Each step, every process takes the same global
batch (the batch streams and the schedule are seeded identically everywhere) and trains on its
own slice of it; DistributedDataParallel averages the gradients, so all copies take the same
AdamW step and stay equal. Only rank 0 prints and writes files.

Run on one machine (gloo on CPU, nccl on GPUs) or several, with torchrun's usual flags:

    torchrun --nproc_per_node 2 train.py --task all
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 train.py ...

Without torchrun (no RANK in the environment) everything here is a no-op for one process.
"""

import os

import torch
import torch.distributed as dist


def setup(device_type):
    """Join the process group if started by torchrun; returns (rank, world_size, device)."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device(device_type)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(device_type)
    if device_type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return rank, world, device


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
    """Sum a float (or a tensor) over processes; identity for one process."""
    if not active():
        return value
    t = torch.as_tensor(value, dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() if t.dim() == 0 else t


def all_mean_(tensor):
    """Average a tensor over processes, in place (for gradients DDP does not see)."""
    if active():
        dist.all_reduce(tensor)
        tensor /= world()
    return tensor


def gather(obj):
    """A list of every process's obj (in rank order); [obj] for one process."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def barrier():
    if active():
        dist.barrier()


def cleanup():
    """Leave the process group together: a process that tears down gloo while a peer still
    works (rank 0 writes the predictions) can abort at exit ("terminate called without an
    active exception"), so everyone waits for everyone first."""
    if active():
        dist.barrier()
        dist.destroy_process_group()
