"""Flags that reach the computation they name: each test fails if train.py (or mlm.py) parses the
flag but the code that should use it falls back to the default. The tiny model, the toy data."""

import pytest
import torch
from conftest import TINY

import mlm
import pcgrad
import smart
import train
from minbert import BertModel


def setup_run(data_dir, out, *flags):
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", "--amp", "off"]
    return train.setup(train.parse_args([*argv, *flags]))


@pytest.mark.parametrize("extra", [[], ["--layer-lr-decay", "0.5"]], ids=["plain", "layer-decay"])
def test_weight_decay_shrinks_the_matrices_by_lr_times_it(data_dir, tmp_path, extra):
    # A zero gradient leaves Adam's update at 0: one step is the decoupled decay alone,
    # p <- p * (1 - lr * wd) on matrices, biases and LayerNorm gains untouched.
    run = setup_run(data_dir, tmp_path, "--weight-decay", "0.5", "--lr", "0.1", *extra)
    head = run.model.heads["sst"].out
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    for p in run.model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    run.optimizer.step()
    assert torch.allclose(head.weight, weight * (1 - 0.1 * 0.5))  # the heads' lr scale is 1
    assert torch.equal(head.bias, bias)


def test_attn_unpad_and_compile_reach_the_encoder(data_dir, tmp_path, monkeypatch):
    # The three give the same values either way (minbert.py), so what is checked is the encoder's
    # own setting: the attention its layers run, padding removal, and the compiled layers.
    compiled = []
    monkeypatch.setattr(BertModel, "compile_layers", lambda self, *a, **k: compiled.append(self))
    run = setup_run(data_dir, tmp_path / "a", "--attn", "explicit", "--unpad", "off", "--compile")
    assert {layer.attn.impl for layer in run.model.bert.layers} == {"explicit"}
    assert run.model.bert.unpad is False and compiled == [run.model.bert]
    plain = setup_run(data_dir, tmp_path / "b")
    assert plain.model.bert.attn_impl == "sdpa" and plain.model.bert.unpad is True and len(compiled) == 1


def test_batch_sizes_batching_and_max_length_reach_the_data(data_dir, tmp_path):
    flags = ["--batch-size", "4", "--sst-batch-size", "3", "--sts-batch-size", "6", "--batching", "random"]
    run = setup_run(data_dir, tmp_path / "a", *flags, "--max-length", "8")
    assert {t: len(next(s)) for t, s in run.streams.items()} == {"sst": 3, "para": 4, "sts": 6}  # 48 rows each
    assert not any(s.bucket for s in run.streams.values())  # the order batch_order makes without buckets
    assert max(d.lengths.max() for d in run.splits["train"].values()) == 8  # the toy pairs run to 20 tokens
    plain = setup_run(data_dir, tmp_path / "b")
    assert all(s.bucket for s in plain.streams.values())
    assert max(d.lengths.max() for d in plain.splits["train"].values()) > 8


def test_eval_subset_scores_that_many_dev_rows_chosen_by_the_seed(data_dir, tmp_path):
    subsets = [setup_run(data_dir, tmp_path / str(s), "--eval-subset", "5", "--seed", str(s)).dev for s in (0, 1)]
    assert all(len(d) == 5 for d in subsets[0].values())  # of the 24 toy dev rows
    assert any(subsets[0][t].example_ids != subsets[1][t].example_ids for t in subsets[0])


def test_lr_warmup_and_schedule_reach_the_step_lr(data_dir, tmp_path):
    # 4 steps, warmup 0.5: 2 steps up (lr/2, lr), then linear decay (lr, lr/2) or constant.
    flags = ["--lr", "0.01", "--warmup", "0.5", "--epochs", "1", "--steps-per-epoch", "4"]
    linear = setup_run(data_dir, tmp_path / "a", *flags)
    assert [train.lr_at(linear, 0, s) for s in range(4)] == pytest.approx([0.005, 0.01, 0.01, 0.005])
    constant = setup_run(data_dir, tmp_path / "b", *flags, "--lr-schedule", "constant")
    assert [train.lr_at(constant, 0, s) for s in range(4)] == pytest.approx([0.005, 0.01, 0.01, 0.01])
    train.train_step(constant, 0, 3)
    assert constant.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def first_part(run, task):
    return next(train.task_batches(run, task, last_task=True))


def test_task_weights_scale_the_loss_that_is_backpropagated(data_dir, tmp_path):
    run = setup_run(data_dir, tmp_path, "--sst-weight", "2", "--para-weight", "3", "--sts-weight", "0.5")
    for task, weight in {"sst": 2.0, "para": 3.0, "sts": 0.5}.items():
        part = first_part(run, task)
        loss, out = train.task_loss(run.net, run.model, task, part, run.args)
        assert train.log_part(run, {}, task, loss, out, part).item() == pytest.approx(weight * loss.item())


def test_smart_flags_reach_the_regularizer(data_dir, tmp_path, monkeypatch):
    # smart.py's own tests check what each setting does; here: that train.py hands each one over,
    # applies the regularizer to --smart-tasks only, and weighs it by --smart.
    seen = []
    monkeypatch.setattr(smart, "smart_regularizer", lambda *a, **k: seen.append(k) or torch.tensor(1.0))
    flags = ["--smart", "2", "--smart-tasks", "para", "--smart-eps", "0.01", "--smart-sigma", "0.02"]
    flags += ["--smart-eta", "0.03", "--smart-steps", "2", "--smart-norm", "l2", "--smart-variant", "normalize"]
    run = setup_run(data_dir, tmp_path, *flags, "--dropout", "0", "--encoder-dropout", "0")
    for task in ("sst", "para"):
        part = first_part(run, task)
        loss, _ = train.task_loss(run.net, run.model, task, part, run.args)
        plain = run.model.loss(task, run.model(task, part.batch), part.batch["labels"])
        assert loss.item() == pytest.approx(plain.item() + (2.0 if task == "para" else 0.0), abs=1e-5)
    assert len(seen) == 1  # para's; sst is not among --smart-tasks
    hyper = {k: seen[0][k] for k in ("eps", "sigma", "eta", "steps", "norm", "variant")}
    assert hyper == {"eps": 0.01, "sigma": 0.02, "eta": 0.03, "steps": 2, "norm": "l2", "variant": "normalize"}


@pytest.mark.parametrize("extra", [[], ["--schedule", "summed", "--pcgrad", "--pcgrad-reduction", "mean"]])
def test_clip_and_pcgrad_reduction_reach_the_step(data_dir, tmp_path, monkeypatch, extra):
    clips, reductions, clip, backward = [], [], torch.nn.utils.clip_grad_norm_, pcgrad.backward
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, norm, **k: clips.append(norm) or clip(p, norm, **k)
    )
    monkeypatch.setattr(pcgrad, "backward", lambda *a, **k: reductions.append(a[2]) or backward(*a, **k))
    run = setup_run(data_dir, tmp_path, "--clip", "0.5", *extra)
    train.train_step(run, 0, 0)
    assert clips == [0.5]
    assert reductions == (["mean"] if extra else [])


def test_seed_orders_the_tasks_and_the_batches(data_dir, tmp_path):
    runs = [setup_run(data_dir, tmp_path / str(s), "--seed", str(s), "--steps-per-epoch", "20") for s in (0, 1)]
    tasks = [[r.schedule.tasks_for_step(0, s) for s in range(20)] for r in runs]  # annealed: a draw per step
    assert tasks[0] != tasks[1]
    batches = [[next(r.streams["sst"]) for _ in range(3)] for r in runs]
    assert batches[0] != batches[1]


def test_overfit_batch_makes_an_epoch_one_batch_per_task(data_dir, tmp_path):
    flags = ["--schedule", "round-robin", "--batch-size", "8"]
    run = setup_run(data_dir, tmp_path / "a", *flags, "--overfit-batch")
    assert run.schedule.steps_in_epoch(0) == 3  # sst, para, sts: their one fixed batch each
    assert setup_run(data_dir, tmp_path / "b", *flags).schedule.steps_in_epoch(0) == 18  # 48 rows / 8, in turn
    first = next(run.streams["sst"])
    assert all(next(run.streams["sst"]) == first for _ in range(7))


# ----------------------------------------------------------------------------
# mlm.py


def mlm_setup(data_dir, out, *flags):
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", "--amp", "off"]
    return mlm.setup(mlm.parse_args([*argv, "--batch-size", "8", *flags]), log=lambda *a, **k: None)


def test_mlm_optimizer_flags_reach_adamw(data_dir, tmp_path):
    run = mlm_setup(data_dir, tmp_path, "--eps", "1e-6", "--weight-decay", "0.5", "--lr", "0.1")
    assert {g["eps"] for g in run.optimizer.param_groups} == {1e-6}
    matrix = next(p for p in run.model.parameters() if p.dim() == 2)
    before = matrix.detach().clone()
    for p in run.model.parameters():
        p.grad = torch.zeros_like(p)
    run.optimizer.step()  # a zero gradient: the decoupled decay alone, p * (1 - lr * wd)
    assert torch.allclose(matrix, before * (1 - 0.1 * 0.5))


def test_mlm_epochs_warmup_and_clip_reach_the_steps(data_dir, tmp_path, monkeypatch):
    clips, clip = [], torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, norm, **k: clips.append(norm) or clip(p, norm, **k)
    )
    run = mlm_setup(data_dir, tmp_path, "--epochs", "2", "--warmup", "0.5", "--clip", "0.25", "--lr", "0.01")
    per_epoch = run.schedule.per_epoch
    assert per_epoch > 1 and run.schedule.total_steps() == 2 * per_epoch
    mlm.train_step(run, 0, 0)  # the first of per_epoch warmup steps
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / per_epoch)
    assert clips == [0.25]


def test_mlm_seed_splits_orders_and_masks(data_dir, tmp_path, monkeypatch):
    runs = [mlm_setup(data_dir, tmp_path / str(s), "--seed", str(s), "--holdout", "0.2") for s in (0, 1)]
    held = [{tuple(x) for x in r.held.ids} for r in runs]
    assert held[0] != held[1]  # other texts held out
    assert [r.schedule.seed for r in runs] == [0, 1]  # the batch order of each epoch
    drawn = []
    masking = runs[1].masking
    monkeypatch.setattr(runs[1], "masking", lambda batch, g: drawn.append(g.initial_seed()) or masking(batch, g))
    mlm.train_step(runs[1], 0, 2)
    assert drawn == [mlm.seeded(1, 0, 2).initial_seed()]  # step 2's masks: from the seed, the epoch, the step


def test_amp_runs_the_training_forward_under_autocast(data_dir, tmp_path, monkeypatch):
    dtypes, task_loss = [], train.task_loss

    def record(net, model, task, part, args):
        loss, out = task_loss(net, model, task, part, args)
        dtypes.append(out.dtype)  # the head's linear layer, in bf16 under autocast
        return loss, out

    monkeypatch.setattr(train, "task_loss", record)
    flags = ["--task", "sst", "--dropout", "0"]
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--device", "cpu", *flags]
    for out, amp in (("a", "bf16"), ("b", "off")):
        run = train.setup(train.parse_args([*argv, "--out", str(tmp_path / out), "--amp", amp]))
        train.train_step(run, 0, 0)
    assert dtypes == [torch.bfloat16, torch.float32]


def test_pcgrad_visits_the_tasks_in_an_order_drawn_from_the_seed(data_dir, tmp_path, monkeypatch):
    seeds, backward = [], pcgrad.backward
    monkeypatch.setattr(pcgrad, "backward", lambda *a, **k: seeds.append(a[3].initial_seed()) or backward(*a, **k))
    run = setup_run(data_dir, tmp_path, "--schedule", "summed", "--pcgrad", "--seed", "3")
    train.train_step(run, 0, 1)
    assert seeds == [3 * 1_000_003 + 1]  # (seed, global step): the same order on every process and on resume
