"""Flags that reach the computation they name: each test fails if train.py (or mlm.py) parses the
flag but the code that should use it falls back to the default. The tiny model, the toy data."""

import pytest
import torch
from conftest import TINY

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
