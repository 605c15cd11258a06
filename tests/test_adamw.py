"""adamw.AdamW against torch.optim.AdamW, state_dict resume, and argument checks."""

import io

import pytest
import torch
from conftest import DEVICE

import adamw
from adamw import AdamW


def make_model():
    torch.manual_seed(0)
    layers = torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3)
    return torch.nn.Sequential(*layers).to(DEVICE)


def make_batches(n):
    generator = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(4, 8, generator=generator), torch.randint(0, 3, (4,), generator=generator)) for _ in range(n)
    ]
    return [(x.to(DEVICE), y.to(DEVICE)) for x, y in batches]


def train_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def param_groups(model, grouped, weight_decay):
    """One group, or the usual two: decay on weight matrices, none on biases and LayerNorm, other lr."""
    if not grouped:
        return [{"params": list(model.parameters())}]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0, "lr": 3e-3},
    ]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay,grouped", [(0.0, False), (0.01, False), (0.01, True)])
def test_matches_torch_adamw(foreach, weight_decay, grouped):
    ours_model, ref_model = make_model(), make_model()
    hyper = dict(lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=weight_decay, foreach=foreach)
    ours = AdamW(param_groups(ours_model, grouped, weight_decay), **hyper)
    ref = torch.optim.AdamW(param_groups(ref_model, grouped, weight_decay), **hyper)
    for x, y in make_batches(200):
        train_step(ours_model, ours, x, y)
        train_step(ref_model, ref, x, y)
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p_ours, p_ref, atol=1e-6, rtol=0)
    # The check must be able to fail: training has moved the weights far from the start.
    start = make_model()
    assert max((p - q).abs().max() for p, q in zip(ours_model.parameters(), start.parameters())) > 0.1


def test_loop_and_foreach_agree_with_skipped_grads():
    """A parameter with no grad on some steps is left alone and keeps its own step count."""
    models = [make_model(), make_model()]
    optimizers = [AdamW(m.parameters(), lr=1e-2, foreach=f) for m, f in zip(models, [False, True])]
    for i, (x, y) in enumerate(make_batches(21)):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            skip = i % 3 == 0  # steps 0, 3, ..., 18: 7 skipped of 21
            if skip:
                model[0].bias.grad = None
                before = model[0].bias.clone()
            optimizer.step()
            if skip:
                assert torch.equal(model[0].bias, before)
    for model, optimizer in zip(models, optimizers):
        assert optimizer.state[model[0].bias]["step"] == 14
        assert optimizer.state[model[0].weight]["step"] == 21
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_resume_continues_exactly(foreach):
    batches = make_batches(40)
    model = make_model()
    optimizer = AdamW(param_groups(model, True, 0.01), lr=1e-2, foreach=foreach)
    for x, y in batches:
        train_step(model, optimizer, x, y)

    # Interrupted run: 20 steps, save through bytes, rebuild from scratch, load, 20 more.
    model_a = make_model()
    optimizer_a = AdamW(param_groups(model_a, True, 0.01), lr=1e-2, foreach=foreach)
    for x, y in batches[:20]:
        train_step(model_a, optimizer_a, x, y)
    buffer = io.BytesIO()
    torch.save({"model": model_a.state_dict(), "optimizer": optimizer_a.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    model_b = make_model()
    optimizer_b = AdamW(param_groups(model_b, True, 0.01), lr=5.0, foreach=foreach)  # lr comes from the checkpoint
    model_b.load_state_dict(checkpoint["model"])
    optimizer_b.load_state_dict(checkpoint["optimizer"])
    assert optimizer_b.state[model_b[0].weight]["step"] == 20
    for x, y in batches[20:]:
        train_step(model_b, optimizer_b, x, y)

    for p, q in zip(model.parameters(), model_b.parameters()):
        assert torch.equal(p, q)


def test_closure_returns_loss():
    model = make_model()
    optimizer = AdamW(model.parameters())
    x, y = make_batches(1)[0]

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    before = model[0].weight.clone()
    loss = optimizer.step(closure)
    assert loss.requires_grad and loss.item() > 0
    assert not torch.equal(model[0].weight, before)


def test_sparse_gradient_is_refused():
    embedding = torch.nn.Embedding(10, 4, sparse=True)
    optimizer = AdamW(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        optimizer.step()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(lr=-1e-3), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(betas=(1.0, 0.999)), r"betas\[0\]"),
        (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
        (dict(betas=(0.9,)), "pair"),
        (dict(eps=-1e-8), "eps"),
        (dict(weight_decay=-0.01), "weight_decay"),
        (dict(foreach="yes"), "foreach"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdamW(make_model().parameters(), **kwargs)


def test_foreach_in_small_slices_matches_torch(monkeypatch):
    """The CPU multi-tensor step works through the parameters in groups of flat slices
    (adamw.CHUNK elements). With a chunk of 7, tensors are cut inside and groups span several
    tensors; a non-contiguous parameter (no flat view) is taken whole. Same result as torch."""
    monkeypatch.setattr(adamw, "CHUNK", 7)

    def build():
        model = make_model()
        model.extra = torch.nn.Parameter(torch.randn(5, 3).t())  # (3, 5), non-contiguous
        return model

    def step(model, optimizer, x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y) + (model.extra**2).sum() * 1e-2
        loss.backward()
        optimizer.step()

    ours_model, ref_model = build(), build()
    assert not ours_model.extra.is_contiguous()
    ours = AdamW(ours_model.parameters(), lr=1e-2, weight_decay=0.01, foreach=True)
    ref = torch.optim.AdamW(ref_model.parameters(), lr=1e-2, weight_decay=0.01)
    for x, y in make_batches(50):
        step(ours_model, ours, x, y)
        step(ref_model, ref, x, y)
    for p_ours, p_ref in zip(ours_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p_ours, p_ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("foreach", [False, True])
def test_embedding_rows_never_seen_match_torch_exactly(foreach):
    """Rows of an embedding that get no gradient keep v = 0 exactly; the multi-tensor step
    takes sqrt(v + TINY) there (adamw.TINY), which must not change a single bit."""
    results = []
    for opt_class in (AdamW, torch.optim.AdamW):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(100, 8)
        kwargs = {"foreach": foreach} if opt_class is AdamW else {}
        optimizer = opt_class(emb.parameters(), lr=1e-3, weight_decay=0.01, **kwargs)
        for step in range(30):
            optimizer.zero_grad(set_to_none=True)
            emb(torch.tensor([1, 2, 3 + step % 5])).pow(2).sum().backward()  # rows 1..7 only
            optimizer.step()
        results.append(emb.weight.detach().clone())
        v = optimizer.state[emb.weight]["exp_avg_sq"]
        assert (v[8:] == 0).all() and (v[1:8] > 0).all()
    assert torch.equal(results[0], results[1])


def test_slices_without_a_chunk_is_one_group_of_whole_tensors():
    """What the multi-tensor step does off the CPU: every tensor whole, in one group."""
    tensors = [torch.zeros(3, 4), torch.zeros(5)]
    groups = list(adamw._slices(tensors, tensors, tensors, tensors, [1, 2], None))
    assert len(groups) == 1 and groups[0][0] is tensors and groups[0][4] == [1, 2]
    # Slices of at most 5; a group closes once it holds 5 or more: 12 = 5 + 5 + 2, and the 2 goes with the 5.
    groups = list(adamw._slices(tensors, tensors, tensors, tensors, [1, 2], 5))
    sizes = [[x.numel() for x in group[0]] for group in groups]
    assert sizes == [[5], [5], [2, 5]] and [group[4] for group in groups] == [[1], [1], [1, 2]]
