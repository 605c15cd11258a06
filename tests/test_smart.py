"""smart.py: l_s by hand, the ε-ball, one ascent step against a plain re-derivation, and gradient flow."""

import math

import pytest
import torch

from smart import DEFAULT_EPS, _project, divergence, smart_regularizer, symmetric_kl

B, T, H, C = 3, 5, 4, 2


def toy_model(seed=0, out=C):
    """The head of f(x) = Linear(mean over tokens of tanh(x)), see `pooled`."""
    torch.manual_seed(seed)
    return torch.nn.Linear(H, out)


def make_embeds(seed=1, requires_grad=False):
    x = torch.randn(B, T, H, generator=torch.Generator().manual_seed(seed))  # (B, T, H)
    return x.requires_grad_(requires_grad)


def pooled(model):
    # tanh makes f nonlinear in x: for a linear f, f(x + δ) - f(x) would not depend on x at all,
    # and R_s's gradient with respect to x would be 0 whatever the code did.
    return lambda e: model(torch.tanh(e).mean(dim=1))  # (B, T, H) -> (B, H) -> (B, C)


def sigmoid(s):
    return 1.0 / (1.0 + math.exp(-s))


# ----------------------------------------------------------------------------------------
# l_s by hand


def test_symmetric_kl_is_zero_for_identical_inputs():
    logits = torch.tensor([[0.3, -1.2, 2.0], [1.0, 1.0, 1.0]])
    assert symmetric_kl(logits, logits.clone(), "multiclass").item() == 0.0
    scores = torch.tensor([0.7, -3.0])
    assert symmetric_kl(scores, scores.clone(), "binary").item() == 0.0


def test_symmetric_kl_two_classes_by_hand():
    # Row 1: p = softmax(0, 1), q = softmax(1, 0). Row 2 is identical on both sides, so it adds 0
    # and the batch mean halves row 1's value.
    a = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    b = torch.tensor([[1.0, 0.0], [2.0, -1.0]])
    e = math.e
    p = [1 / (1 + e), e / (1 + e)]
    q = [e / (1 + e), 1 / (1 + e)]
    kl_pq = sum(pk * math.log(pk / qk) for pk, qk in zip(p, q))
    kl_qp = sum(qk * math.log(qk / pk) for pk, qk in zip(p, q))
    expected = (kl_pq + kl_qp) / 2
    assert math.isclose(expected, math.tanh(0.5), rel_tol=1e-12)  # the closed form 2·tanh(1/2), halved
    assert symmetric_kl(a, b, "multiclass").item() == pytest.approx(expected, rel=1e-6)
    assert symmetric_kl(b, a, "multiclass").item() == pytest.approx(expected, rel=1e-6)


def test_symmetric_kl_bernoulli_by_hand():
    a, b = 0.5, -1.0
    p, q = sigmoid(a), sigmoid(b)
    kl_pq = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    kl_qp = q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))
    expected = kl_pq + kl_qp
    assert math.isclose(expected, (p - q) * (a - b), rel_tol=1e-12)  # symmetric KL of Bernoullis
    got = symmetric_kl(torch.tensor([a, 0.0]), torch.tensor([b, 0.0]), "binary").item()
    assert got == pytest.approx(expected / 2, rel=1e-6)  # second example identical, batch mean
    got_column = symmetric_kl(torch.tensor([[a]]), torch.tensor([[b]]), "binary").item()
    assert got_column == pytest.approx(expected, rel=1e-6)


def test_regression_is_mean_squared_error_by_hand():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    assert divergence(a, b, "regression").item() == pytest.approx((1.0**2 + 2.0**2) / 2)
    assert divergence(a[:, None], b[:, None], "regression").item() == pytest.approx(2.5)
    assert divergence(a, a, "regression").item() == 0.0


def test_symmetric_kl_gradient_is_soft_cross_entropy():
    # Each KL term trains only its log-side (MT-DNN form): d/da = (softmax(a) - softmax(b)) / B.
    a = torch.tensor([[0.0, 1.0, -0.5], [0.2, 0.2, 3.0]], requires_grad=True)
    b = torch.tensor([[1.0, 0.0, 0.5], [-1.0, 2.0, 0.0]], requires_grad=True)
    symmetric_kl(a, b, "multiclass").backward()
    pa, pb = a.detach().softmax(-1), b.detach().softmax(-1)
    torch.testing.assert_close(a.grad, (pa - pb) / 2)
    torch.testing.assert_close(b.grad, (pb - pa) / 2)


def test_divergence_is_float32_from_bfloat16_inputs():
    a = torch.tensor([[0.0, 1.0]], dtype=torch.bfloat16)
    b = torch.tensor([[1.0, 0.0]], dtype=torch.bfloat16)
    assert symmetric_kl(a, b, "multiclass").dtype == torch.float32
    assert divergence(a, b, "regression").dtype == torch.float32


def test_divergence_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        divergence(torch.zeros(2), torch.zeros(2), "ordinal")
    with pytest.raises(ValueError, match="kind"):
        symmetric_kl(torch.zeros(2), torch.zeros(2), "regression")
    with pytest.raises(ValueError, match="shapes differ"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 2), "multiclass")
    with pytest.raises(ValueError, match=r"must be \(B, C\)"):
        symmetric_kl(torch.zeros(2), torch.zeros(2), "multiclass")
    with pytest.raises(ValueError, match=r"must be \(B,\) or \(B, 1\)"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 3), "binary")
    with pytest.raises(ValueError, match="shapes differ"):
        divergence(torch.zeros(2), torch.zeros(3), "regression")


# ----------------------------------------------------------------------------------------
# The ε-ball and the ascent step


def test_project_inf_clamps_each_entry():
    delta = torch.tensor([[[0.5, -0.02, 0.001], [-3.0, 0.0, 0.05]]])  # (1, 2, 3)
    got = _project(delta, 0.05, "inf")
    torch.testing.assert_close(got, torch.tensor([[[0.05, -0.02, 0.001], [-0.05, 0.0, 0.05]]]))


def test_project_l2_rescales_long_tokens_only():
    delta = torch.tensor([[[3.0, 4.0], [0.03, 0.04], [0.0, 0.0]]])  # token norms 5, 0.05, 0
    got = _project(delta, 0.1, "l2")
    torch.testing.assert_close(got[0, 0], torch.tensor([0.06, 0.08]))  # norm 0.1, same direction
    torch.testing.assert_close(got[0, 1:], delta[0, 1:])  # inside the ball: unchanged, no NaN at 0


@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_final_delta_lies_in_the_ball(norm):
    model, eps = toy_model(), 0.01
    x = make_embeds()
    _, delta = smart_regularizer(
        pooled(model),
        x,
        pooled(model)(x),
        "multiclass",
        eps=eps,
        sigma=0.1,
        eta=1.0,
        steps=3,
        norm=norm,
        generator=torch.Generator().manual_seed(0),
        return_delta=True,
    )
    token_norms = delta.abs().amax(-1) if norm == "inf" else delta.norm(dim=-1)  # (B, T)
    assert (token_norms <= eps * (1 + 1e-6)).all()
    assert token_norms.max() > 0.9 * eps  # the step of η = 1 ≫ ε really reached the boundary


def reference_one_step(forward, x, kind, eps, sigma, eta, norm, variant, seed):
    """Algorithm 1 written out for T = 1, drawing δ0 from the same generator seed as smart.py."""
    delta0 = sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    delta = delta0.clone().requires_grad_()
    inner = divergence(forward(x + delta), forward(x).detach(), kind)
    (g,) = torch.autograd.grad(inner, delta)
    if norm == "inf":

        def token_norm(t):
            return t.abs().amax(-1, keepdim=True)
    else:

        def token_norm(t):
            return t.norm(dim=-1, keepdim=True)

    if variant == "project":
        step = delta0 + eta * g / token_norm(g)
        if norm == "inf":
            return delta0, step.clamp(-eps, eps)
        return delta0, step * torch.clamp(eps / token_norm(step), max=1.0)
    step = delta0 + eta * g
    return delta0, step / (token_norm(step) + eps)


@pytest.mark.parametrize("norm", ["inf", "l2"])
@pytest.mark.parametrize("variant", ["project", "normalize"])
def test_one_step_matches_reference_and_increases_the_inner_loss(norm, variant):
    model = toy_model()
    forward, x = pooled(model), make_embeds()
    clean = forward(x)
    settings = dict(eps=0.1, sigma=0.01, eta=0.1, norm=norm, variant=variant)
    _, delta0 = smart_regularizer(
        forward,
        x,
        clean,
        "multiclass",
        steps=0,
        return_delta=True,
        generator=torch.Generator().manual_seed(7),
        **settings,
    )
    _, delta1 = smart_regularizer(
        forward,
        x,
        clean,
        "multiclass",
        steps=1,
        return_delta=True,
        generator=torch.Generator().manual_seed(7),
        **settings,
    )
    ref0, ref1 = reference_one_step(forward, x, "multiclass", seed=7, **settings)
    torch.testing.assert_close(delta0, ref0)
    torch.testing.assert_close(delta1, ref1)

    def inner_loss(delta):
        return divergence(forward(x + delta), clean, "multiclass").item()

    assert inner_loss(delta1) > 10 * inner_loss(delta0)
    if variant == "project":
        # Not just a bigger δ: beats random signs on the same ∞-sphere, which mostly cancel in the mean.
        coins = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(3))
        random_signs = 0.1 * (2 * coins - 1)
        assert inner_loss(delta1) > inner_loss(random_signs)


def test_normalize_variant_is_not_bounded_by_eps():
    model = toy_model()
    forward, x = pooled(model), make_embeds()
    _, delta = smart_regularizer(
        forward,
        x,
        forward(x),
        "multiclass",
        eps=1e-6,
        sigma=0.01,
        variant="normalize",
        generator=torch.Generator().manual_seed(0),
        return_delta=True,
    )
    # Every token ends with ∞-norm m / (m + ε) ≈ 1 (m is of order σ = 0.01 here), a million times ε.
    torch.testing.assert_close(delta.abs().amax(-1), torch.ones(B, T), atol=1e-3, rtol=0)


def test_normalize_variant_sums_the_final_kl_over_the_batch():
    # smart-pytorch's sym_kl_loss (reduction="sum"), which "BERT and Beyond"'s λ = 0.45 multiplied.
    # A forward that ignores δ returns a = rows (0, 1), (2, -1) against clean b = (1, 0), (2, -1):
    # row 1's symmetric KL is 2 tanh(1/2) (test above), row 2's 0. project: their mean, tanh(1/2);
    # normalize: their sum, 2 tanh(1/2) = B times the mean.
    a = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    b = torch.tensor([[1.0, 0.0], [2.0, -1.0]])
    x = torch.zeros(2, 3, 4)
    forward = lambda e: a + 0 * e.sum()  # noqa: E731  (a gradient of 0 reaches δ)
    args = dict(generator=torch.Generator().manual_seed(0))
    project = smart_regularizer(forward, x, b, "multiclass", variant="project", **args).item()
    normalize = smart_regularizer(forward, x, b, "multiclass", variant="normalize", **args).item()
    assert project == pytest.approx(math.tanh(0.5), rel=1e-6)
    assert normalize == pytest.approx(2 * math.tanh(0.5), rel=1e-6)
    assert symmetric_kl(a, b, "multiclass", reduction="sum").item() == pytest.approx(2 * math.tanh(0.5), rel=1e-6)
    # At batch 16 the factor is 16: the same pair of rows, eight times over.
    a16, b16 = a.repeat(8, 1), b.repeat(8, 1)
    forward16 = lambda e: a16 + 0 * e.sum()  # noqa: E731
    sixteen = smart_regularizer(forward16, torch.zeros(16, 3, 4), b16, "multiclass", variant="normalize", **args)
    assert sixteen.item() == pytest.approx(16 * math.tanh(0.5), rel=1e-6)
    # Regression keeps the mean squared error (smart-pytorch has no regression loss of its own).
    s, t = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    score = lambda e: s + 0 * e.sum()  # noqa: E731
    assert smart_regularizer(score, x, t, "regression", variant="normalize").item() == pytest.approx(2.5)


@pytest.mark.parametrize("variant", ["normalize", "project"])
def test_a_part_with_its_batch_share_steps_as_the_whole_batch_does(variant):
    # --grad-accum and torchrun cut a batch into parts. A part's ascent, with batch_share = part /
    # whole, takes the whole batch's per-example gradients, so it reaches the whole batch's δ on
    # its rows. (No random start, sigma 0, so that both start alike: a target away from f(x) gives
    # the ascent a gradient at δ = 0.)
    model = toy_model()
    x = torch.randn(4, T, H, generator=torch.Generator().manual_seed(3))
    forward = pooled(model)
    target = forward(x).detach() + torch.tensor([0.5, -0.5])

    def delta(rows, **share):
        args = dict(variant=variant, eta=1e-1, steps=2, sigma=0.0, return_delta=True)
        return smart_regularizer(forward, x[:rows], target[:rows], "multiclass", **args, **share)[1][:2]

    whole = delta(4)
    assert torch.allclose(delta(2, batch_share=0.5), whole, atol=1e-6)
    if variant == "normalize":  # without its share the part's step depends on its size: another δ
        assert not torch.allclose(delta(2), whole, atol=1e-3)


def test_normalize_variant_defaults_to_smart_pytorch_eps():
    # DEFAULT_EPS: the paper's 1e-5 for project, smart-pytorch's and the report's 1e-6 for normalize.
    # With σ = 1e-6 a token's norm m is of the order of ε, so m / (m + ε) shows which ε ran.
    assert DEFAULT_EPS == {"project": 1e-5, "normalize": 1e-6}
    model = toy_model()
    forward, x = pooled(model), make_embeds()

    def delta(**eps):
        gen = torch.Generator().manual_seed(0)
        kw = dict(sigma=1e-6, variant="normalize", generator=gen, return_delta=True)
        return smart_regularizer(forward, x, forward(x), "multiclass", **kw, **eps)[1]

    torch.testing.assert_close(delta(), delta(eps=1e-6), rtol=0, atol=0)
    assert not torch.allclose(delta(), delta(eps=1e-5))


def test_train_resolves_the_smart_eps_default_per_variant():
    import train

    assert train.parse_args(["--smart-variant", "normalize"]).smart_eps == 1e-6
    assert train.parse_args([]).smart_eps == 1e-5
    assert train.parse_args(["--smart-variant", "normalize", "--smart-eps", "1e-5"]).smart_eps == 1e-5


# ----------------------------------------------------------------------------------------
# Gradient flow


def test_regularizer_gradient_treats_delta_as_a_constant():
    model = toy_model(out=3)
    forward = pooled(model)
    x = make_embeds(requires_grad=True)
    reg, delta = smart_regularizer(
        forward,
        x,
        forward(x),
        "multiclass",
        eps=0.05,
        sigma=0.01,
        eta=0.1,
        steps=2,
        generator=torch.Generator().manual_seed(0),
        return_delta=True,
    )
    assert all(p.grad is None for p in model.parameters())  # the ascent used autograd.grad only
    assert not delta.requires_grad and delta.grad_fn is None
    reg.backward()

    # Re-derive with δ as a given constant; any graph left through the ascent would change these.
    x2 = x.detach().clone().requires_grad_()
    reg2 = divergence(forward(x2 + delta), forward(x2), "multiclass")
    grads = torch.autograd.grad(reg2, [x2, *model.parameters()])
    torch.testing.assert_close(reg, reg2)
    assert x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, grads[0])
    for p, g in zip(model.parameters(), grads[1:]):
        assert g.abs().sum() > 0  # gradients really flow to the parameters
        torch.testing.assert_close(p.grad, g)


def test_insensitive_model_gives_zero_regularizer():
    bias = torch.nn.Parameter(torch.tensor([0.5, -0.5]))

    def forward(e):
        return bias.expand(e.shape[0], 2) + 0.0 * e.sum()  # output ignores the embeddings

    x = make_embeds(requires_grad=True)
    reg = smart_regularizer(forward, x, forward(x), "multiclass", generator=torch.Generator().manual_seed(0))
    assert reg.item() == 0.0
    reg.backward()
    torch.testing.assert_close(bias.grad, torch.zeros(2), atol=1e-6, rtol=0)  # 0 up to float32 rounding
    assert torch.isfinite(x.grad).all()


def test_bi_encoder_tuple_binary_and_regression():
    torch.manual_seed(0)
    head = torch.nn.Linear(2 * H, 1)

    def forward(e1, e2):
        return head(torch.cat([torch.tanh(e1).mean(1), torch.tanh(e2).mean(1)], dim=-1)).squeeze(-1)  # (B,)

    x1, x2 = make_embeds(1, requires_grad=True), make_embeds(2, requires_grad=True)
    for kind in ("binary", "regression"):
        x1.grad = x2.grad = head.weight.grad = None
        reg, deltas = smart_regularizer(
            forward,
            (x1, x2),
            forward(x1, x2),
            kind,
            eps=0.1,
            sigma=0.01,
            eta=0.1,
            generator=torch.Generator().manual_seed(0),
            return_delta=True,
        )
        assert isinstance(deltas, tuple) and len(deltas) == 2
        assert all(d.shape == (B, T, H) and d.abs().max() <= 0.1 for d in deltas)
        assert not torch.equal(deltas[0], deltas[1])  # each sentence gets its own perturbation
        assert reg.item() > 0
        reg.backward()
        assert x1.grad.abs().sum() > 0 and x2.grad.abs().sum() > 0 and head.weight.grad.abs().sum() > 0


def test_runs_under_bfloat16_autocast_and_returns_float32():
    model = toy_model()
    forward = pooled(model)
    x = make_embeds(requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = forward(x)
        assert logits.dtype == torch.bfloat16
        reg = smart_regularizer(
            forward, x, logits, "multiclass", eps=0.1, sigma=0.01, eta=0.1, generator=torch.Generator().manual_seed(0)
        )
    assert reg.dtype == torch.float32 and reg.dim() == 0
    assert torch.isfinite(reg) and reg.item() > 0
    reg.backward()
    assert torch.isfinite(model.weight.grad).all() and model.weight.grad.abs().sum() > 0


def test_regularizer_rejects_bad_arguments():
    model = toy_model()
    forward, x = pooled(model), make_embeds()
    clean = forward(x)
    bad_arguments = [
        (dict(kind="ordinal"), "kind"),
        (dict(norm="l1"), "norm"),
        (dict(variant="clip"), "variant"),
        (dict(steps=-1), "steps"),
        (dict(steps=1.5), "steps"),
        (dict(eps=0.0), "eps"),
        (dict(sigma=-1e-5), r"need eps > 0, sigma >= 0, eta > 0; got .*, -1e-05, "),  # a negative std
        (dict(eta=0.0), r"need eps > 0, sigma >= 0, eta > 0; got .*, 0.0$"),
    ]
    for bad, match in bad_arguments:
        args = dict(kind="multiclass") | bad
        with pytest.raises(ValueError, match=match):
            smart_regularizer(forward, x, clean, **args)


def test_under_fp16_autocast_the_ascent_runs_in_float32():
    # Near δ = 0 the inner gradient is ~1e-9: fp16's backward flushes most of it to 0, so most
    # of δ would stay at its random start. The ascent runs in float32 instead, giving the float32 δ.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5))
    forward = lambda x: net(x).mean(1)  # (B, T, H) -> (B, 5)
    x = torch.randn(4, 6, 32)

    def delta(fp16):
        with torch.autocast("cpu", dtype=torch.float16, enabled=fp16):
            out = forward(x)
            generator = torch.Generator().manual_seed(1)
            return smart_regularizer(forward, x, out, "multiclass", generator=generator, return_delta=True)[1]

    fp32 = delta(False)
    assert (fp32.abs() == 1e-5).float().mean() > 0.9  # the step reached the ball's surface almost everywhere
    assert torch.equal(delta(True), fp32)
