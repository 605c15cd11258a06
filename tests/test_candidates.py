"""Issue 29's candidate techniques for the main job, each a train.py flag that is off by default:
each formula checked by hand, each flag shown to reach training and prediction (so a test fails
if the flag were ignored), and the default run shown to take none of the new code paths."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, TINY
from test_heads import write_run
from test_train import interrupt_at

import data
import export
import heads
import loop
import losses
import predict
import train
from ema import EMA
from heads import HeadConfig, MultitaskBert
from hub import packaged_model_dir
from minbert import BertModel
from tokenizer import build_tokenizer


def run(data_dir, out, *extra):
    """A 2-epoch, 6-step run of the tiny encoder on the toy tasks (as tests/test_train.py's)."""
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2"]
    argv += ["--steps-per-epoch", "6", "--batch-size", "8", "--lr", "1e-3", "--log-every", "3"]
    return train.train(train.parse_args([*argv, "--device", DEVICE.type, "--no-report", *extra]))


def best_state(out):
    return torch.load(out / "best.pt", weights_only=True)["model"]


# ----------------------------------------------------------------------------
# --pair-symmetry


def test_swap_pair_gives_the_tokenizers_other_order():
    tokenizer = build_tokenizer(packaged_model_dir(), max_length=128)
    a, b = "a gorgeous, witty film .", "the cast is long and dull"
    ab_ids, ab_types = data._encode_texts(tokenizer, [(a, b)])
    ba_ids, ba_types = data._encode_texts(tokenizer, [(b, a)])
    ids, types = data.swap_pair(ab_ids[0], ab_types[0])
    assert ids.tolist() == ba_ids[0].tolist() and types.tolist() == ba_types[0].tolist()
    assert types.dtype == ab_types[0].dtype
    back = data.swap_pair(ids, types)
    assert back[0].tolist() == ab_ids[0].tolist() and back[1].tolist() == ab_types[0].tolist()
    # by hand: [CLS]=2 a=(7, 8) [SEP]=3 b=(9,) [SEP]=3  ->  [CLS] 9 [SEP] 7 8 [SEP], types 0 0 0 1 1 1
    ids, types = data.swap_pair(np.array([2, 7, 8, 3, 9, 3]), np.array([0, 0, 0, 0, 1, 1], dtype=np.int8))
    assert ids.tolist() == [2, 9, 3, 7, 8, 3] and types.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="cross-encoded pair"):
        data.swap_pair(np.array([2, 7, 3]), np.array([0, 0, 0], dtype=np.int8))


def test_collate_swaps_only_the_chosen_pairs():
    tokenizer = build_tokenizer(packaged_model_dir(), max_length=128)
    examples = [data.Example(str(i), f"first {i} .", f"the second one {i} here .", 1.0) for i in range(3)]
    plain = data.encode(tokenizer, examples, "cross")
    other = data.encode(tokenizer, [data.Example(e.id, e.text_b, e.text_a, 1.0) for e in examples], "cross")
    batch = data.collate(plain, [0, 1, 2], swap=[False, True, False])
    expected = [data.collate(plain, [0]), data.collate(other, [1]), data.collate(plain, [2])]
    for row, one in enumerate(expected):
        n = one["input_ids"].shape[1]
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert batch[key][row, :n].tolist() == one[key][0].tolist()
    assert torch.equal(
        data.collate(plain, [0, 1, 2], swap=[False] * 3)["input_ids"], data.collate(plain, [0, 1, 2])["input_ids"]
    )


def test_symmetric_prediction_averages_both_orders():
    config = HeadConfig(pair_symmetry=True)
    torch.manual_seed(0)
    model = MultitaskBert(BertModel.from_pretrained(TINY), 5, config).eval()
    tokenizer = build_tokenizer(TINY, max_length=32)
    examples = [
        data.Example(str(i), f"the film {w} .", f"a {w} story", 1.0) for i, w in enumerate(["good", "bad dull"])
    ]
    task_data = data.encode(tokenizer, examples, "cross")
    swapped = data.encode(tokenizer, [data.Example(e.id, e.text_b, e.text_a, 1.0) for e in examples], "cross")
    with torch.no_grad():
        for task in ("para", "sts"):
            assert model.symmetric(task) and not model.symmetric("sst")
            out = torch.stack([model(task, data.collate(task_data, [i]))[0] for i in range(2)])
            out_b = torch.stack([model(task, data.collate(swapped, [i]))[0] for i in range(2)])
            preds, raws = predict.predict(model, task, task_data)
            if task == "para":  # the mean of the two probabilities, not of the logits
                expected = (torch.sigmoid(out) + torch.sigmoid(out_b)) / 2
                assert preds.tolist() == (expected > 0.5).long().tolist()
            else:  # the mean of the two scores, clipped to [0, 5] only as the prediction
                expected = (out + out_b) / 2
                assert np.allclose(preds, expected.clamp(0, 5).numpy(), atol=1e-6)
            assert np.allclose(raws, expected.numpy(), atol=1e-6)
            one_order = torch.sigmoid(out) if task == "para" else out
            assert not np.allclose(raws, one_order.numpy(), atol=1e-6)  # the second order mattered


def test_symmetric_prediction_by_hand():
    model = MultitaskBert(BertModel.from_pretrained(TINY), 5, HeadConfig(pair_symmetry=True))
    # para: probabilities 1/2 and 3/4 average to 0.625 (the mean logit, ln(3) / 2, would give 0.634)
    pred, prob = model.predict_symmetric("para", torch.tensor([0.0, -1.0]), torch.tensor([math.log(3), -2.0]))
    assert prob.tolist() == pytest.approx([0.625, (1 / (1 + math.e) + 1 / (1 + math.e**2)) / 2])
    assert pred.tolist() == [1, 0]
    # sts: scores 4.5 and 6 average to 5.25, clipped to 5 only as the prediction
    pred, raw = model.predict_symmetric("sts", torch.tensor([4.5, 1.0]), torch.tensor([6.0, 2.0]))
    assert raw.tolist() == [5.25, 1.5] and pred.tolist() == [5.0, 1.5]


def test_pair_symmetry_is_rebuilt_by_load_trained(tmp_path):
    args = {"pair_encoding": "cross", "dropout": 0.1, "pooling": "cls", "pair_symmetry": True}
    torch.manual_seed(2)
    write_run(tmp_path, MultitaskBert(BertModel.from_pretrained(TINY), 5, HeadConfig.from_args(args)), args)
    model, _, _ = predict.load_trained(tmp_path)
    assert model.symmetric("para") and model.symmetric("sts")
    with pytest.raises(ValueError, match="--pair-symmetry swaps the sentences of a cross-encoded pair"):
        HeadConfig(pair_symmetry=True, para_encoding="bi", sts_encoding="bi")


def test_pair_symmetry_trains_on_both_orders(data_dir, tmp_path, monkeypatch):
    swaps, collate = [], data.collate

    def record(d, indices, swap=None):
        if torch.is_grad_enabled() and swap is not None:
            swaps.extend(swap)
        return collate(d, indices, swap)

    monkeypatch.setattr(data, "collate", record)
    plain = run(data_dir, tmp_path / "plain")
    assert swaps == []
    symmetric = run(data_dir, tmp_path / "sym", "--pair-symmetry", "--seed", "0")
    assert 0.25 < np.mean(swaps) < 0.75  # about half the training pairs came b before a
    assert symmetric["epochs"] != plain["epochs"]
    assert symmetric["config"]["pair_symmetry"] is True


def test_pair_symmetry_survives_export(data_dir, tmp_path):
    run(data_dir, tmp_path / "sym", "--pair-symmetry", "--epochs", "1")
    meta = export.export(tmp_path / "sym", tmp_path / "exported")
    assert meta["head_config"]["pair_symmetry"] is True and "two orders" in meta["heads"]["para"]["input"]
    assert export.load_export(tmp_path / "exported").symmetric("sts")


# ----------------------------------------------------------------------------
# --ema


def test_ema_is_the_decay_weighted_mean_of_the_steps_weights():
    layer = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(layer, decay=0.5)
    for w in (1.0, 2.0, 4.0):
        layer.weight.data.fill_(w)
        ema.update(layer)
    # by hand: (0.25 * 1 + 0.5 * 2 + 1 * 4) / (0.25 + 0.5 + 1) = 5.25 / 1.75 = 3
    assert ema.params[0].item() == pytest.approx(3.0)
    # d_1 = 0: after one step the average is that step's weights, not the initial ones
    first = EMA(layer, decay=0.999)
    layer.weight.data.fill_(7.0)
    first.update(layer)
    assert first.params[0].item() == 7.0
    with ema.applied(layer):
        assert layer.weight.item() == pytest.approx(3.0)
    assert layer.weight.item() == 7.0  # its own weights back after the block


def test_ema_state_loads_only_into_the_same_model_and_decay():
    layer = torch.nn.Linear(2, 1)
    saved = EMA(layer, decay=0.9)
    saved.update(layer)
    again = EMA(layer, decay=0.9)
    again.load_state_dict(saved.state_dict())
    assert again.updates == 1
    for other in (EMA(layer, decay=0.99), EMA(torch.nn.Linear(3, 1), decay=0.9)):
        with pytest.raises(ValueError, match="does not fit this model and --ema"):
            other.load_state_dict(saved.state_dict())
        assert other.updates == 0


def test_ema_weights_are_scored_kept_and_checkpointed(data_dir, tmp_path):
    metrics = run(data_dir, tmp_path / "ema", "--ema", "0.9", "--epochs", "1")
    ckpt = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=True)
    best = best_state(tmp_path / "ema")
    assert ckpt["ema"]["updates"] == 6 and ckpt["ema"]["decay"] == 0.9
    names = [n for n, _ in predict.load_trained(tmp_path / "ema")[0].named_parameters()]
    averaged = dict(zip(names, ckpt["ema"]["params"]))
    assert all(torch.equal(best[n], averaged[n]) for n in names)  # best.pt holds the average ...
    assert any(not torch.equal(best[n], ckpt["model"][n]) for n in names)  # ... not the last weights
    assert metrics["config"]["ema"] == 0.9


# ----------------------------------------------------------------------------
# every candidate at once: resumed exactly, and absent from the default run

ALL_ON = [
    "--pair-symmetry",
    "--ema",
    "0.9",
    "--layer-lr-decay",
    "0.8",
    "--rdrop",
    "1",
    "--label-smoothing",
    "0.1",
    "--sts-loss",
    "mse-pearson",
]


def test_resume_with_every_candidate_equals_uninterrupted(data_dir, tmp_path, monkeypatch):
    extra = ["--save-every", "4", "--seed", "3", *ALL_ON]
    full = run(data_dir, tmp_path / "full", *extra)
    with monkeypatch.context() as m:
        interrupt_at(m, 8, "crash")  # global step 8 = step 3 of epoch 2; the last save was after step 7
        with pytest.raises(RuntimeError, match="simulated crash"):
            run(data_dir, tmp_path / "cut", *extra)
    resumed = train.train(train.parse_args(["--resume", str(tmp_path / "cut")]))
    assert resumed["dev"] == full["dev"] and resumed["epochs"] == full["epochs"]
    a, b = best_state(tmp_path / "full"), best_state(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ema_a, ema_b = (torch.load(tmp_path / f / "checkpoint.pt", weights_only=True)["ema"] for f in ("full", "cut"))
    assert ema_a["updates"] == ema_b["updates"] == 12
    assert all(torch.equal(x, y) for x, y in zip(ema_a["params"], ema_b["params"]))


# ----------------------------------------------------------------------------
# --layer-lr-decay


def test_layer_decay_groups_by_hand():
    model = MultitaskBert(BertModel.from_pretrained(TINY), 5, HeadConfig(pooling="pooler"))  # 2 layers, pooler trained
    groups = loop.layer_decay_groups(model, 0.01, 0.5, num_layers=2)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: g["lr_scale"] for g in groups for p in g["params"]}
    decay = {names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}
    assert len(scale) == len(names)  # every parameter in exactly one group
    assert scale["heads.sst.out.weight"] == scale["bert.pooler.weight"] == 1.0
    assert scale["bert.layers.1.ffn_in.weight"] == 0.5  # the top layer: gamma^(2 - 1)
    assert scale["bert.layers.0.ln1.bias"] == 0.25  # gamma^(2 - 0)
    assert scale["bert.embeddings.word.weight"] == 0.125  # gamma^(2 + 1)
    assert decay["bert.layers.0.ffn_in.weight"] == 0.01 and decay["bert.layers.0.ffn_in.bias"] == 0.0


def test_layer_lr_decay_scales_every_group_with_the_schedule(data_dir, tmp_path):
    argv = ["--model", str(TINY), "--data-dir", str(data_dir), "--steps-per-epoch", "10", "--warmup", "0.5"]
    plain = train.setup(train.parse_args([*argv, "--out", str(tmp_path / "a")]))
    assert all("lr_scale" not in g for g in plain.optimizer.param_groups)  # the default: param_groups' two groups
    decayed = train.setup(train.parse_args([*argv, "--out", str(tmp_path / "b"), "--layer-lr-decay", "0.5"]))
    for step in (0, 7):  # in the warmup and in the decay
        train.train_step(decayed, 0, step)
        lr = train.lr_at(decayed, 0, step)
        assert sorted({g["lr"] for g in decayed.optimizer.param_groups}) == pytest.approx(
            [lr * 0.125, lr * 0.25, lr * 0.5, lr]
        )


# ----------------------------------------------------------------------------
# --rdrop and --label-smoothing (sentiment)


def test_rdrop_kl_and_rdrop_loss_by_hand():
    a, b = torch.tensor([[0.5, 0.5]]).log(), torch.tensor([[0.25, 0.75]]).log()
    kl_ab = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # = 0.5 ln(4/3)
    kl_ba = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert losses.rdrop_kl(a, b).item() == pytest.approx((kl_ab + kl_ba) / 2)
    assert losses.rdrop_kl(b, a).item() == pytest.approx((kl_ab + kl_ba) / 2)
    assert losses.rdrop_kl(a + 3.0, a).item() == pytest.approx(0.0, abs=1e-7)  # the same distribution
    # a batch: the mean over its rows, not their sum (a second, identical row halves it)
    two_a, two_b = torch.cat([a, a]), torch.cat([b, a])
    assert losses.rdrop_kl(two_a, two_b).item() == pytest.approx((kl_ab + kl_ba) / 4)
    l1, l2 = torch.tensor(1.0), torch.tensor(2.0)
    assert losses.rdrop_loss(l1, l2, a, b, alpha=4.0).item() == pytest.approx(1.5 + 2 * (kl_ab + kl_ba) / 2)


def test_label_smoothing_by_hand():
    logits, label = torch.tensor([[1.0, 2.0, 1.0]]).log(), torch.tensor([1])  # p = (1/4, 1/2, 1/4)
    # target (0.1, 0.8, 0.1) at eps 0.3: -(0.1 ln 1/4 + 0.8 ln 1/2 + 0.1 ln 1/4) = 1.2 ln 2
    smoothed = MultitaskBert(BertModel.from_pretrained(TINY), 3, HeadConfig(label_smoothing=0.3)).heads["sst"]
    assert smoothed.loss(logits, label).item() == pytest.approx(1.2 * math.log(2))  # the flag reaches the head
    plain = MultitaskBert(BertModel.from_pretrained(TINY), 3, HeadConfig()).heads["sst"]
    assert plain.loss(logits, label).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="--label-smoothing needs --sst-loss ce"):
        HeadConfig(label_smoothing=0.1, sst_loss="oll")


def sst_grads(args, model, batch, seed=0):
    model.zero_grad()
    torch.manual_seed(seed)
    n = len(batch["labels"])
    loss, out = train.task_loss(model, model, "sst", train.Part(batch, n, 1.0, n, 1.0, True), args)
    loss.backward()
    return loss, out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_rdrop_is_two_dropout_passes_and_their_kl(data_dir):
    args = train.parse_args(["--model", str(TINY), "--rdrop", "2"])
    torch.manual_seed(0)
    model = train.build_model(args, TINY, ["sst"], 5).train()  # dropout on: the two passes differ
    batch = {
        "input_ids": torch.tensor([[2, 5, 30, 3], [2, 31, 3, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "token_type_ids": torch.zeros(2, 4, dtype=torch.long),
        "labels": torch.tensor([1, 4]),
    }
    loss, out, grads = sst_grads(args, model, batch)
    assert out.shape == (2, 5)  # the first pass's logits, for the training accuracy
    torch.manual_seed(0)  # the same dropout masks, by hand: one forward of the batch twice over
    twice = model("sst", {k: torch.cat([v, v]) for k, v in batch.items()})
    a, b = twice.chunk(2)
    ce = (F.cross_entropy(a, batch["labels"]) + F.cross_entropy(b, batch["labels"])) / 2
    assert loss.item() == pytest.approx((ce + 2 / 2 * losses.rdrop_kl(a, b)).item(), rel=1e-6)
    assert torch.allclose(out, a, atol=1e-6)
    args.rdrop = 0.0  # off: one pass and its plain gradient, which R-Drop changed
    _, _, plain = sst_grads(args, model, batch)
    assert any(not torch.allclose(grads[n], plain[n]) for n in plain)


# ----------------------------------------------------------------------------
# --sts-loss mse-pearson


def test_pearson_loss_by_hand():
    scores, labels = torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 2.0, 2.0])
    # centred: x = (-4, -1, 5) / 3, y = (-4, 2, 2) / 3; r = 24 / sqrt(42 * 24) = sqrt(4 / 7)
    assert losses.pearson_loss(scores, labels).item() == pytest.approx(1 - math.sqrt(4 / 7))
    assert losses.pearson_loss(labels, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.pearson_loss(-labels, labels).item() == pytest.approx(2.0)
    args = train.parse_args(["--model", str(TINY), "--sts-loss", "mse-pearson"])
    model = train.build_model(args, TINY, ["sts"], 5)
    mse = (0 + 1 + 1) / 3
    assert model.loss("sts", scores, labels).item() == pytest.approx(mse + 1 - math.sqrt(4 / 7))
    bi = train.parse_args(["--model", str(TINY), "--sts-loss", "mse-pearson", "--sts-encoding", "bi"])
    assert train.build_model(bi, TINY, ["sts"], 5).loss("sts", scores, labels).item() == pytest.approx(
        mse + 1 - math.sqrt(4 / 7)
    )  # the cosine heads too
    plain = train.build_model(train.parse_args(["--model", str(TINY)]), TINY, ["sts"], 5)
    assert plain.loss("sts", scores, labels).item() == pytest.approx(mse)  # the default: squared error alone


@pytest.mark.parametrize(
    "scores,labels",
    [([2.0], [3.0]), ([1.0, 2.0, 4.0], [5.0, 5.0, 5.0]), ([2.0, 2.0, 2.0], [1.0, 3.0, 5.0])],
    ids=["batch-of-one", "constant-labels", "constant-scores"],
)
def test_pearson_loss_without_a_correlation_is_finite(scores, labels):
    scores = torch.tensor(scores, requires_grad=True)
    loss = losses.pearson_loss(scores, torch.tensor(labels))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # r = 0
    assert torch.isfinite(scores.grad).all()


def test_sts_loss_with_the_l1_head_is_refused():
    with pytest.raises(ValueError, match="sustech-b1 head trains with its own L1 loss"):
        HeadConfig(sts_encoding="bi", sts_bi_head="sustech-b1", sts_loss="mse-pearson")


def test_the_default_run_takes_no_candidate_path(data_dir, tmp_path, monkeypatch):
    calls = {}

    def counted(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if name != "cross_entropy" or kwargs.get("label_smoothing"):
                calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    targets = [(data, "swap_pair"), (heads.MultitaskBert, "predict_symmetric"), (EMA, "update")]
    targets += [(train, "layer_decay_groups"), (train, "rdrop_loss"), (heads, "pearson_loss"), (F, "cross_entropy")]
    for owner, name in targets:
        counted(owner, name)
    run(data_dir, tmp_path / "default")
    assert calls == {}
    run(data_dir, tmp_path / "all", *ALL_ON)  # ... while the flags do reach every one of them
    assert set(calls) == {name for _, name in targets}
