"""loop.py: the learning-rate schedule by hand, progress lines, device choice, checkpoints, and the
loop itself on a toy job (Ctrl-C and resume, early and --max-steps ends)."""

import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import DEVICE, ROOT

import files
import loop


def test_get_lr_warms_up_linearly_then_decays_to_zero():
    lrs = [loop.get_lr(step, 100, 1.0, warmup=0.1) for step in range(100)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # 0.1, 0.2, ..., 1.0
    assert lrs[10] == pytest.approx(1.0)  # (100 - 10) / (100 - 10)
    assert lrs[55] == pytest.approx(45 / 90)
    assert lrs[99] == pytest.approx(1 / 90)  # the last step still moves; step 100 would be 0
    assert loop.get_lr(100, 100, 1.0, warmup=0.1) == 0.0


def test_get_lr_without_warmup_and_constant():
    assert loop.get_lr(0, 50, 2e-5) == pytest.approx(2e-5)
    assert [loop.get_lr(s, 50, 3.0, 0.2, "constant") for s in (0, 9, 10, 49)] == pytest.approx([0.3, 3.0, 3.0, 3.0])


def test_get_lr_step_multiplies_by_gamma_every_k_epochs_after_warmup():
    # StepLR(step_size=2, gamma=0.1) stepped per epoch; warmup 10% of 100 steps comes first.
    step = [loop.get_lr(s, 100, 1.0, 0.1, "step", epoch=e, step_epochs=2, gamma=0.1) for s, e in ((50, 0), (60, 1))]
    assert step == pytest.approx([1.0, 1.0])
    assert [loop.get_lr(70, 100, 1.0, 0.1, "step", e, 2, 0.1) for e in (2, 3, 4)] == pytest.approx([0.1, 0.1, 0.01])
    assert loop.get_lr(4, 100, 1.0, 0.1, "step", epoch=4, step_epochs=2) == pytest.approx(0.5)  # warming up


def test_clip_and_step_clips_the_gradient_norm_then_steps_and_clears():
    """With SGD at lr 1 the step is minus the gradient the optimizer was given: its norm is the
    clip when the gradient was longer, the gradient itself when it was shorter or clip is 0."""
    for clip, grad, moved in (
        (1.0, [3.0, 4.0], [-0.6, -0.8]),
        (1.0, [0.3, 0.4], [-0.3, -0.4]),
        (0.0, [3.0, 4.0], [-3.0, -4.0]),
    ):
        w = torch.nn.Parameter(torch.zeros(2))
        optimizer = torch.optim.SGD([w], lr=1.0)
        w.grad = torch.tensor(grad)
        loop.clip_and_step(torch.nn.ParameterList([w]), optimizer, torch.amp.GradScaler("cpu", enabled=False), clip)
        torch.testing.assert_close(w.detach(), torch.tensor(moved))
        assert w.grad is None  # cleared for the next step


def test_param_groups_decay_matrices_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    decayed, plain = loop.param_groups(model, 0.01)
    assert [p.shape for p in decayed["params"]] == [(4, 3)] and decayed["weight_decay"] == 0.01
    assert len(plain["params"]) == 3 and plain["weight_decay"] == 0.0


def test_format_time_and_progress_line():
    assert loop.format_time(59) == "0m59s" and loop.format_time(61) == "1m01s" and loop.format_time(3725) == "1h02m"
    progress = loop.Progress(total=100, start=10)
    progress.t0 -= 9.0  # as if 9 s had passed
    line = progress.line(19)  # 9 steps in 9 s: 1 step/s, 81 left
    assert line.startswith("1.00 steps/s") and "ETA 1m21s" in line


def test_pick_device_resolves_auto():
    device, amp = loop.pick_device("auto", "auto")
    if torch.cuda.is_available():
        assert device.type == "cuda" and amp in ("bf16", "fp16")
    else:
        assert (device, amp) == (torch.device("cpu"), "off")
        with pytest.raises(SystemExit, match="no CUDA GPU"):
            loop.pick_device("cuda", "auto")


# ----------------------------------------------------------------------------
# checkpoints: the RNG states


def save_tiny(path, rngs=None):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    rngs = () if rngs is None else (rngs,)
    loop.save_checkpoint(path, model, optimizer, scaler, {}, {"step": 7}, argparse.Namespace(lr=1.0), *rngs)


@pytest.mark.filterwarnings("ignore:for (weight|bias). copying from a non-meta:UserWarning")  # meta holds no values
def test_resume_onto_another_device_restores_the_rng(tmp_path):
    # On a GPU the checkpoint's tensors go to CUDA, but torch.set_rng_state takes CPU ByteTensors
    # only. "meta" stands in for CUDA here: the only non-CPU device a CPU build of torch has.
    torch.manual_seed(3)
    save_tiny(tmp_path / "checkpoint.pt")
    expected = torch.rand(4)
    torch.manual_seed(99)
    model = torch.nn.Linear(3, 2, device="meta")
    parts = (model, torch.optim.AdamW(model.parameters()), torch.amp.GradScaler("cpu", enabled=False), {})
    state = loop.load_checkpoint(tmp_path / "checkpoint.pt", *parts, torch.device("meta"))
    assert state == {"step": 7} and model.weight.device.type == "meta"
    assert torch.equal(torch.rand(4), expected)  # the draws continue where the saved run was


def test_each_process_resumes_its_own_rng(tmp_path):
    # Two processes' generators saved in rank order: rank 1 takes the second, not rank 0's.
    states = []
    for seed in (10, 11):
        torch.manual_seed(seed)
        states.append(loop.rng_states())
    save_tiny(tmp_path / "checkpoint.pt", rngs=states)
    torch.manual_seed(11)
    expected = torch.rand(4)
    model = torch.nn.Linear(3, 2)
    parts = (model, torch.optim.AdamW(model.parameters()), torch.amp.GradScaler("cpu", enabled=False), {})
    loop.load_checkpoint(tmp_path / "checkpoint.pt", *parts, torch.device("cpu"), rank=1)
    assert torch.equal(torch.rand(4), expected)
    torch.manual_seed(5)
    fresh = torch.rand(4)
    torch.manual_seed(5)
    loop.load_checkpoint(tmp_path / "checkpoint.pt", *parts, torch.device("cpu"), rank=2)  # none saved: kept
    assert torch.equal(torch.rand(4), fresh)


def test_overwrite_under_torchrun_is_rank_zeros_to_do(tmp_path, monkeypatch):
    """Every process runs loop.start. When each removed the old run, one died on a file another had
    just removed (FileNotFoundError, about one run in three), or could remove rank 0's new files."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    args = argparse.Namespace(out=str(out), resume=None, overwrite=True, device="cpu", amp="off", seed=0)
    monkeypatch.setenv("RANK", "1")
    loop.start(args, ("metrics.json",))
    assert (out / "metrics.json").is_file()
    monkeypatch.setenv("RANK", "0")
    loop.start(args, ("metrics.json",))
    assert not (out / "metrics.json").exists()


@pytest.mark.skipif(DEVICE.type != "cpu", reason="make gpu-check's run: the tests that take a device use the GPU")
def test_a_cpu_test_run_leaves_auto_on_the_cpu_of_a_gpu_machine():
    # Tests that give no --device (test_ensemble's per-task bests, at 1e-5 from CPU predictions)
    # ran train.py's auto, the GPU and bf16, where `make test` ran on a GPU machine.
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == ""  # conftest: GPUs hidden, from subprocesses too
    code = "import loop; print(*loop.pick_device('auto', 'auto'))"
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["cpu", "off"]


def test_torchrun_asking_for_more_gpus_than_there_are_says_so():
    # One process more than the machine has GPUs: LOCAL_RANK n on n GPUs (n = 0 on a CPU machine).
    n = torch.cuda.device_count()
    with pytest.raises(SystemExit, match=rf"LOCAL_RANK {n}, but torch sees {n} GPU\(s\): start at most {n} per"):
        loop.take_local_gpu(n)


def test_tf32_is_a_training_choice_that_tests_do_not_inherit():
    assert not torch.backends.cuda.matmul.allow_tf32  # conftest's true_fp32: every test starts in fp32
    loop.use_tf32(torch.device("cpu"))
    assert not torch.backends.cuda.matmul.allow_tf32  # nothing to do off CUDA
    loop.use_tf32(torch.device("cuda"))  # the flag exists in every build; only a GPU reads it
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_a_checkpoint_from_before_per_process_rng_states_still_resumes(tmp_path):
    # Older checkpoints hold one CPU state under "rng" (and "cuda_rng" where CUDA was in use).
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    torch.manual_seed(7)
    old = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": {}, "streams": {}}
    files.save_torch({**old, "rng": torch.get_rng_state(), "state": {"step": 2}, "args": {}}, tmp_path / "old.pt")
    expected = torch.rand(4)
    torch.manual_seed(8)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = loop.load_checkpoint(tmp_path / "old.pt", model, optimizer, scaler, {}, torch.device("cpu"))
    assert state == {"step": 2} and torch.equal(torch.rand(4), expected)


# ----------------------------------------------------------------------------
# the loop itself, on a toy job: what train.py and mlm.py bring to it is a step and an epoch's end


class Steps:
    """The schedule as the loop reads it: `per_epoch` steps an epoch, `total` in all."""

    def __init__(self, per_epoch, total):
        self.per_epoch, self.total = per_epoch, total

    def total_steps(self):
        return self.total

    def steps_in_epoch(self, epoch):
        return max(0, min(self.per_epoch, self.total - epoch * self.per_epoch))

    def global_step(self, epoch, step):
        return epoch * self.per_epoch + step

    def describe(self, epoch):
        return f"{self.steps_in_epoch(epoch)} steps"


def toy_run(out, epochs=3, total=9, resume=None):
    out.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    args = argparse.Namespace(epochs=epochs, log_every=2, save_every=0, resume=resume)
    state = {"epoch": 0, "step": 0, "history": [], "elapsed": 0.0, "data": {}}
    optimizer, scaler = torch.optim.AdamW(model.parameters(), lr=0.1), torch.amp.GradScaler("cpu", enabled=False)
    parts = dict(optimizer=optimizer, scaler=scaler, schedule=Steps(3, total), tasks=["toy"], state=state)
    run = loop.Run(args=args, out=out, device=torch.device("cpu"), log=print, model=model, **parts)
    if resume:
        loop.resume(run)
    return run


def toy_step(run, epoch, step, stop_at=None):
    """One step on fresh random data (the global generator: a resume must continue its draws)."""
    if run.state.get("global_step", 0) == stop_at:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop finishes this step, saves and stops
    x = torch.randn(4, 3)  # (B, 3)
    loss = ((run.model(x) - x.sum(1, keepdim=True)) ** 2).mean()
    loss.backward()
    loop.clip_and_step(run.model, run.optimizer, run.scaler, 1.0)
    return {"toy": (loss.detach(), torch.zeros(2))}


def toy_end(run, epoch, patience_out=99):
    """The epoch's mean training loss as its score; True (stop early) after epoch `patience_out`."""
    run.state["history"].append(float(np.mean(run.state["epoch_loss"]["toy"])))
    return epoch + 1 >= patience_out


def test_the_loop_stops_on_ctrl_c_and_resumes_as_if_never_stopped(tmp_path, capsys):
    full = toy_run(tmp_path / "full")
    assert loop.train_epochs(full, toy_step, toy_end, "toy.py")
    cut = toy_run(tmp_path / "cut")
    assert not loop.train_epochs(cut, lambda *a: toy_step(*a, stop_at=4), toy_end, "toy.py")
    assert f"continue with: python toy.py --resume {tmp_path / 'cut'}" in capsys.readouterr().out
    resumed = toy_run(tmp_path / "cut", resume=str(tmp_path / "cut"))
    assert (resumed.state["epoch"], resumed.state["step"]) == (1, 2)  # stopped after global step 5
    before = resumed.state["elapsed"]  # the seconds before the stop, from the checkpoint
    t0, elapsed, t1 = time.time(), resumed.elapsed, time.time()
    assert before > 0 and before + t0 - resumed.t_start <= elapsed <= before + t1 - resumed.t_start
    assert loop.train_epochs(resumed, toy_step, toy_end, "toy.py")
    assert resumed.state["history"] == full.state["history"] and len(full.state["history"]) == 3
    assert torch.equal(resumed.model.weight, full.model.weight)


def test_the_loop_ends_early_when_asked_or_out_of_steps(tmp_path):
    early = toy_run(tmp_path / "early")
    assert loop.train_epochs(early, toy_step, lambda run, epoch: toy_end(run, epoch, patience_out=2), "toy.py")
    saved = torch.load(tmp_path / "early" / "checkpoint.pt", weights_only=True)["state"]
    assert len(early.state["history"]) == 2 and saved["epoch"] == 2  # checkpointed after the last epoch it ran
    short = toy_run(tmp_path / "short", total=4)  # as mlm.py's --max-steps: epoch 2 has 1 step, epoch 3 none
    assert loop.train_epochs(short, toy_step, toy_end, "toy.py")
    assert len(short.state["history"]) == 2 and short.state["global_step"] == 4


@pytest.mark.parametrize("last", [False, True], ids=["middle-epoch", "last-epoch"])
def test_ctrl_c_while_an_epoch_is_scored_stops_after_its_checkpoint(tmp_path, capsys, last):
    # The flag was only read after the next step: one more step after a middle epoch, and after the
    # last one the run went on into its final predictions (minutes on the full dev sets) and exited 0.
    def end_with_ctrl_c(run, epoch):
        if epoch == (2 if last else 0):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the epoch is scored
        return toy_end(run, epoch)

    cut = toy_run(tmp_path / "cut")
    assert not loop.train_epochs(cut, toy_step, end_with_ctrl_c, "toy.py")
    assert f"continue with: python toy.py --resume {tmp_path / 'cut'}" in capsys.readouterr().out
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["state"]
    assert (saved["epoch"], saved["step"]) == ((3 if last else 1), 0)  # the epoch's end, no step after it
    full = toy_run(tmp_path / "full")
    assert loop.train_epochs(full, toy_step, toy_end, "toy.py")
    resumed = toy_run(tmp_path / "cut", resume=str(tmp_path / "cut"))
    assert loop.train_epochs(resumed, toy_step, toy_end, "toy.py")
    assert resumed.state["history"] == full.state["history"]
