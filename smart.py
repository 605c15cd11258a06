"""SMART's smoothness-inducing adversarial regularizer, as a pure function over a forward callable.

Jiang et al., "SMART: Robust and Efficient Fine-Tuning for Pre-trained Natural Language
Models through Principled Regularized Optimization" (ACL 2020): its regularizer R_s and Algorithm 1.
Fine-tuning minimises L(θ) + λ_s R_s(θ), where x is the embedding-layer output and

    R_s(θ) = 1/n Σ_i  max_{||x̃_i - x_i||_p <= ε}  l_s(f(x̃_i; θ), f(x_i; θ))

l_s is the symmetric KL divergence for classifiers and the squared error for regression.
The inner max is approximated by T steps of normalised gradient ascent on δ = x̃ - x:

    δ ~ N(0, σ²I)                                       random start (see `smart_regularizer`)
    repeat T times:
        g = ∂/∂δ l_s(f(x + δ), f(x).detach())           gradient w.r.t. δ only, no parameter grads
        δ = Π_ε(δ + η g / ||g||)                         step of size η, then back into the ε-ball
    R_s = l_s(f(x + δ), f(x))                           δ is a constant here; θ gets the gradient

Norms are taken per token, over the hidden dimension H. For p = ∞ the ball is then the same
as the whole sequence's ∞-ball, and dividing g by its largest |entry| gives a sign-like
direction whose biggest coordinate is 1. For p = 2 ("l2") every token is bounded on its own.
With the paper's defaults (ε = 1e-5, η = 1e-3) one step overshoots the ball, so after the
clamp δ = ±ε, with the sign of g, on every coordinate whose |g| is above about 2% of its
token's largest.

variant="normalize" follows the authors' MT-DNN code (mt_dnn/perturbation.py) and
archinetai/smart-pytorch instead: no normalisation of g and no projection, but

    δ = (δ + η g) / (||δ + η g|| + ε)                   per token, ||.|| the chosen norm

so every token's perturbation has norm m / (m + ε), m = ||δ + η g||. That is close to 1
(about 0.97 with their σ = 1e-5, ε = 1e-6, H = 768 when η g is small), not bounded by ε,
which only keeps the division finite. On LayerNorm-ed embeddings (entries of order 1) that
is a large perturbation, far outside the paper's ε-ball. g is not normalised here, so
whether η g or the random start decides the direction depends on the gradient's scale.

The normalize variant also takes smart-pytorch's scale for λ ("BERT and Beyond" used that
package, λ_s = 0.45, ε = 1e-6): its usual pairing, loss_fn=kl_loss, loss_last_fn=sym_kl_loss,
ascends on a batch mean but returns the final symmetric KL with reduction="sum", summed over
the batch as well as the classes. So here the final R_s of the classifiers is summed over the
batch too: B times the project variant's mean, 16x at batch 16, so λ = 0.45 means what the
report's did (about 7.2 in the mean's units). The ascent keeps the mean, and regression keeps
the mean squared error (smart-pytorch has no regression loss of its own; MSELoss averages).
Its ε defaults to smart-pytorch's and the report's 1e-6 (DEFAULT_EPS); project keeps the
paper's 1e-5.

Padded positions get noise too. That is harmless: the attention mask hides them from every
real token, so whatever δ they carry never reaches the outputs (their gradient is zero).

Precision: l_s always runs in float32 with autocast off. Under bf16/fp16 autocast note that
the first matmul rounds x + δ to 8 (bf16) or 11 (fp16) significant bits, so a perturbation of
1e-5 on entries of order 1 mostly rounds away; use fp32 or a larger ε when that matters.
Under fp16 autocast the ascent runs in float32 (f(x) once more, then each step's forward and
∂/∂δ): near δ = 0, l_s and its gradients are tiny, and fp16's backward, which GradScaler scales
for the task loss but not for this inner autograd.grad, flushes most of ∂/∂δ to 0 (read off a
bert-base-sized case: ~9% of the entries left), so most of δ would never move. That costs one
float32 forward, and a float32 forward and backward per step. Only the ascent: R_s itself runs
like the task loss. bf16 has float32's exponent range, nothing underflows, and it stays bf16.

Usage in a training step (`encode_head` runs the encoder from embeddings, then the task head):

    embeds = model.bert.embed(input_ids, token_type_ids)                # (B, T, H)
    logits = encode_head(embeds)                                        # (B, C)
    loss = F.cross_entropy(logits, labels)
    loss = loss + lam * smart_regularizer(encode_head, embeds, logits, "multiclass")

Tests: .venv/bin/python -m pytest -q tests/test_smart.py
"""

import contextlib

import torch

OUTPUT_KINDS = ("multiclass", "binary", "regression")  # the task kinds of tasks.py: what a divergence compares
NORMS = ("inf", "l2")
VARIANTS = ("project", "normalize")
DEFAULT_EPS = {"project": 1e-5, "normalize": 1e-6}  # the paper's ε; smart-pytorch's (and "BERT and Beyond"'s)
_TINY = 1e-12  # keeps g / ||g|| finite (and 0) where a token's gradient is exactly 0


# ----------------------------------------------------------------------------------------
# The divergence l_s


def _autocast_off(t):
    """A context that turns autocast off on t's device, so the loss really runs in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _fp16_autocast(t):
    """Whether fp16 autocast is on for t's device (the ascent then runs in float32)."""
    device = t.device.type
    return torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16


def symmetric_kl(logits_a, logits_b, kind, reduction="mean"):
    """KL(P_a || P_b) + KL(P_b || P_a), summed over classes, averaged over the batch (or summed,
    reduction="sum", as smart-pytorch's sym_kl_loss), float32.

    kind="multiclass": logits (B, C), P = softmax over the last dim.
    kind="binary": one logit per example, (B,) or (B, 1), P = Bernoulli(sigmoid(logit)).

    Gradients follow MT-DNN's SymKlCriterion: in each KL term the distribution inside the
    expectation is detached, so the term pulls only its log-side towards the other one:
        KL(P_b || P_a) trains a,  KL(P_a || P_b) trains b,
    and d/d logits_a = (P_a - P_b) / B, exactly cross-entropy against soft targets P_b.
    Why: the value is unchanged, but the full gradient adds P_a ⊙ (r - E_{P_a}[r]), with
    r = log P_a - log P_b, which grows without bound where P_b puts almost no mass and P_a
    does; the detached form is bounded by 1 per logit and is what the SMART authors trained with.
    Both sides stay in the graph, so the clean logits are also pulled towards the perturbed
    ones, as in the paper's R_s(θ), where both f(x̃; θ) and f(x; θ) depend on θ.
    """
    if kind not in ("multiclass", "binary"):
        raise ValueError(f"symmetric_kl: kind must be 'multiclass' or 'binary', got {kind!r}")
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"symmetric_kl: shapes differ, {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}")
    if kind == "multiclass" and logits_a.dim() < 2:
        raise ValueError(f"symmetric_kl: multiclass logits must be (B, C), got {tuple(logits_a.shape)}")
    if kind == "binary" and logits_a.dim() > 1 and logits_a.shape[-1] != 1:
        raise ValueError(f"symmetric_kl: binary logits must be (B,) or (B, 1), got {tuple(logits_a.shape)}")
    with _autocast_off(logits_a):
        a, b = logits_a.float(), logits_b.float()
        if kind == "binary":
            # Bernoulli(sigmoid(s)) is the 2-class softmax of logits (0, s).
            a, b = a.reshape(-1, 1), b.reshape(-1, 1)
            a = torch.cat([torch.zeros_like(a), a], dim=-1)  # (B, 2)
            b = torch.cat([torch.zeros_like(b), b], dim=-1)  # (B, 2)
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])  # (B, C)
        log_pa, log_pb = a.log_softmax(dim=-1), b.log_softmax(dim=-1)
        pa, pb = log_pa.exp().detach(), log_pb.exp().detach()
        kl_ab = (pa * (log_pa.detach() - log_pb)).sum(dim=-1)  # (B,) KL(P_a || P_b), grad into b
        kl_ba = (pb * (log_pb.detach() - log_pa)).sum(dim=-1)  # (B,) KL(P_b || P_a), grad into a
        both = kl_ab + kl_ba  # (B,)
        return both.sum() if reduction == "sum" else both.mean()


def divergence(out_a, out_b, kind, reduction="mean"):
    """l_s for one task: symmetric KL for "multiclass" / "binary" (reduction over the batch: "mean"
    or "sum"), mean squared error for "regression"."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"divergence: kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    if kind != "regression":
        return symmetric_kl(out_a, out_b, kind, reduction)
    if out_a.shape != out_b.shape:
        raise ValueError(f"divergence: shapes differ, {tuple(out_a.shape)} vs {tuple(out_b.shape)}")
    with _autocast_off(out_a):
        return (out_a.float() - out_b.float()).pow(2).mean()


# ----------------------------------------------------------------------------------------
# Steps of the inner maximisation


def _token_norm(t, norm):
    """Norm of every token's H-vector: (..., H) -> (..., 1)."""
    if norm == "inf":
        return t.abs().amax(dim=-1, keepdim=True)
    return t.norm(dim=-1, keepdim=True)


def _project(delta, eps, norm):
    """Closest point of the per-token ε-ball: clamp for p = ∞, shrink long tokens for p = 2."""
    if norm == "inf":
        return delta.clamp(-eps, eps)
    shrink = (eps / _token_norm(delta, norm).clamp_min(_TINY)).clamp(max=1.0)  # (..., 1)
    return delta * shrink


def _ascend(delta, grad, eps, eta, norm, variant):
    """One ascent step on a detached δ, for either variant; returns the new (detached) δ."""
    if variant == "project":
        # Dividing by the gradient's own norm makes the step length η whatever the loss's scale
        # (batch mean or sum, tiny KL values near δ = 0): only its direction is used.
        direction = grad / _token_norm(grad, norm).clamp_min(_TINY)
        return _project(delta + eta * direction, eps, norm)
    step = delta + eta * grad
    return step / (_token_norm(step, norm) + eps)


# ----------------------------------------------------------------------------------------
# The regularizer


def check_settings(kind, eps, sigma, eta, steps, norm, variant):
    """smart_regularizer's settings, each refused with its name when it is out of range; returns
    ε (eps=None: the variant's DEFAULT_EPS)."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"smart_regularizer: kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    if norm not in NORMS:
        raise ValueError(f"smart_regularizer: norm must be one of {NORMS}, got {norm!r}")
    if variant not in VARIANTS:
        raise ValueError(f"smart_regularizer: variant must be one of {VARIANTS}, got {variant!r}")
    eps = DEFAULT_EPS[variant] if eps is None else eps
    if not (eps > 0 and sigma >= 0 and eta > 0):
        raise ValueError(f"smart_regularizer: need eps > 0, sigma >= 0, eta > 0; got {eps}, {sigma}, {eta}")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"smart_regularizer: steps must be an int >= 0, got {steps!r}")
    return eps


def smart_regularizer(
    forward,
    embeds,
    clean_out,
    kind,
    eps=None,
    sigma=1e-5,
    eta=1e-3,
    steps=1,
    norm="inf",
    variant="project",
    generator=None,
    return_delta=False,
    batch_share=1.0,
):
    """R_s for one batch: l_s(f(x + δ), f(x)) at an approximately worst δ, a float32 scalar.

    forward: callable taking the embeddings (one tensor, or one per sentence for bi-encoders,
        called as forward(*embeds)) and returning the outputs l_s compares: logits (B, C) for
        "multiclass", one logit (B,) or (B, 1) for "binary", scores for "regression".
    embeds: x, the embedding-layer output (B, T, H), or a tuple of such tensors. Gradients of
        R_s reach it (and so the embedding layer), as they reach every parameter of forward.
    clean_out: forward(*embeds), already computed by the caller for the task loss.
    eps, sigma, eta, steps: ε (ball radius), σ (std of the random start), η (step), T.
        steps=0 returns l_s at the random start alone. eps=None: the variant's DEFAULT_EPS.
    norm: "inf" or "l2", per token.  variant: "project" (paper) or "normalize" (MT-DNN,
        smart-pytorch: also the final KL summed over the batch); see the module docstring.
    generator: torch.Generator on embeds' device for the random start, for reproducibility.
    return_delta: also return the final δ (detached, same structure as embeds).
    batch_share: the batch's share of the batch one optimizer step averages over (train.py's
        --grad-accum micro-batches, torchrun's per-process slices: part / whole). The ascent's
        mean is then over the whole batch, as it is without them: the normalize variant's step
        depends on that loss's scale (a smaller part would step further).

    forward runs in whatever mode the model is in. In train mode dropout makes f(x + δ) and
    f(x) differ even at δ = 0, so R_s then also penalises dropout inconsistency (as in MT-DNN).
    Cost: steps + 1 extra forward passes, steps backward passes here and R_s's share of the
    caller's backward.
    """
    eps = check_settings(kind, eps, sigma, eta, steps, norm, variant)
    single = torch.is_tensor(embeds)
    xs = (embeds,) if single else tuple(embeds)

    # Start from random noise, not from 0: l_s is smallest at δ = 0, so its gradient there is 0.
    # From a small random δ the gradient is ≈ Hessian · δ, one power-iteration step towards the
    # most sensitive direction (as in virtual adversarial training). float32 so that 1e-5 is
    # representable next to x even if x is half precision.
    deltas = [
        sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32) for x in xs
    ]  # each (B, T, H)
    target = clean_out.detach()
    fp32_ascent = _fp16_autocast(xs[0])  # see "Precision" above
    if fp32_ascent and steps:  # float32 outputs are compared with float32 outputs
        with _autocast_off(xs[0]), torch.no_grad():
            target = forward(*xs)
    for _ in range(steps):
        deltas = [d.requires_grad_() for d in deltas]
        # x.detach(): the ascent only needs ∂/∂δ, so no graph back into the embedding layer,
        # and autograd.grad (not backward) leaves every parameter's .grad untouched.
        # (autograd.grad too: its backward ops would otherwise be autocast to fp16 again)
        with _autocast_off(xs[0]) if fp32_ascent else contextlib.nullcontext():
            inner = divergence(forward(*[x.detach() + d for x, d in zip(xs, deltas)]), target, kind) * batch_share
            grads = torch.autograd.grad(inner, deltas)
        deltas = [_ascend(d.detach(), g, eps, eta, norm, variant) for d, g in zip(deltas, grads)]

    # δ is a plain constant now (no grad, no graph): R_s's gradient goes to θ and x only.
    reduction = "sum" if variant == "normalize" else "mean"  # smart-pytorch's λ scale (module docstring)
    reg = divergence(forward(*[x + d for x, d in zip(xs, deltas)]), clean_out, kind, reduction)
    if return_delta:
        return reg, deltas[0] if single else tuple(deltas)
    return reg
