"""AdamW written out: Adam with decoupled weight decay, as a drop-in torch.optim.Optimizer.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019),
Algorithm 2, with Adam's bias correction (Kingma & Ba, 2015, Algorithm 1).
For each parameter p with gradient g, at step t = 1, 2, ...:

    p   <- p * (1 - lr * wd)                      decoupled weight decay
    m   <- b1 * m + (1 - b1) * g                  first moment (mean of g)
    v   <- b2 * v + (1 - b2) * g^2                second moment (uncentred variance of g)
    bc1  = 1 - b1^t,  bc2 = 1 - b2^t              bias corrections (m, v start at 0)
    p   <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)

The operations run in the same order as torch.optim.AdamW, so in float32 the
two agree to rounding (tests/test_adamw.py checks 200 steps against it). Two
implementations compute the same thing: `_step_loop` walks the parameters one
at a time and is the one to read; `_step_foreach` applies each line above to a
whole list of tensors with one torch._foreach_* call, which launches far fewer
kernels on a GPU, and on the CPU works through the parameters in slices that
stay in cache. `foreach=None` picks the multi-tensor one.

Usage, as with any torch optimizer:

    optimizer = AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    loss.backward(); optimizer.step(); optimizer.zero_grad()
"""

import torch

# The multi-tensor step reads and writes p, g, m and v about ten times (one pass per line
# of the update). On the CPU it takes the parameters in groups of this many elements
# (16 MiB per group across the four arrays), so that after the first pass the rest hit the
# cache instead of memory: measured here, MiniLM's 22.7M-parameter update went from
# 42-63 ms to about 30 ms. Other devices (GPUs) take everything in one group.
CHUNK = 1 << 20
# sqrt(v) is computed as sqrt(v + TINY): torch's vectorised CPU sqrt takes a slow path on
# exact zeros (10x slower here), and v is all zeros in the word-embedding rows of tokens not
# seen yet (99% of MiniLM's rows after a few steps). TINY, the smallest normal float, leaves
# v unchanged above 2e-31 and moves sqrt(v) by at most 1.1e-19 below it: far under half a
# rounding step of the "+ eps" that follows for any eps >= 1e-12, so the result is the same.
TINY = torch.finfo(torch.float32).tiny


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay. Per-group lr, betas, eps, weight_decay, foreach.

    State per parameter: "step" (int, steps taken), "exp_avg" (m), "exp_avg_sq" (v),
    all saved by state_dict() so a resumed run continues exactly.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, foreach=None):
        if not lr >= 0.0:  # written this way so that NaN is refused too
            raise ValueError(f"AdamW: lr must be >= 0, got {lr}")
        if len(betas) != 2:
            raise ValueError(f"AdamW: betas must be a pair (beta1, beta2), got {betas}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"AdamW: betas[{i}] must be in [0, 1), got {beta}")
        if not eps >= 0.0:
            raise ValueError(f"AdamW: eps must be >= 0, got {eps}")
        if not weight_decay >= 0.0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay}")
        if foreach not in (None, True, False):
            raise ValueError(f"AdamW: foreach must be None, True or False, got {foreach}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimisation step. `closure`, if given, re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            # The closure runs a forward and backward pass, so it needs autograd back on.
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:  # frozen, or unused in this forward pass
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients (e.g. nn.Embedding(sparse=True))")
                state = self.state[p]
                if not state:  # first step for this parameter: moments start at zero
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            # A parameter whose grad was None on some steps has taken fewer steps than
            # its neighbours, so each one keeps its own t for the bias corrections.
            step_fn = self._step_loop if group["foreach"] is False else self._step_foreach
            step_fn(params, grads, exp_avgs, exp_avg_sqs, steps, group)
        return loss

    @staticmethod
    def _step_loop(params, grads, exp_avgs, exp_avg_sqs, steps, group):
        """One parameter at a time: the equations of the module docstring, in order."""
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
            # Decoupled decay: shrink the weights directly instead of adding wd * p to the
            # gradient. Added to g, the decay would be divided by sqrt(v) like the rest of the
            # update, so weights with large gradients would barely be regularised (the paper's
            # point about L2 in Adam). Applied to p, every weight shrinks by the same factor.
            if weight_decay != 0:
                p.mul_(1 - lr * weight_decay)
            # m + (1 - b1)(g - m) is b1*m + (1 - b1)*g rearranged; lerp_ does it in one
            # kernel and is what torch uses, so the rounding matches it.
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)

            # m and v start at 0, so early on they underestimate E[g] and E[g^2] by
            # factors 1 - b^t; dividing by those factors removes that bias.
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            step_size = lr / bias_correction1
            # eps is added after the square root (and after the v correction) so it bounds
            # the step where the gradient is ~0: the update is at most about lr * m / eps,
            # whatever the scale of v. Inside the sqrt it would act as sqrt(eps) instead.
            denom = (v.sqrt() / bias_correction2**0.5).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)

    @staticmethod
    def _step_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, group):
        """The same update, each line applied to a whole list of tensors at once.

        torch._foreach_* ops take lists of tensors and launch a few fused kernels instead
        of one per tensor. Tensors on different devices or dtypes are still accepted: the
        ops then fall back to a per-tensor loop, so nothing here assumes one device.
        """
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        chunk = CHUNK if params[0].device.type == "cpu" else None
        for p, g, m, v, t in _slices(params, grads, exp_avgs, exp_avg_sqs, steps, chunk):
            if weight_decay != 0:
                torch._foreach_mul_(p, 1 - lr * weight_decay)
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, 1 - beta2)

            # Bias corrections are Python floats, one per tensor (each may be at its own step).
            step_sizes = [-lr / (1 - beta1**n) for n in t]
            bias_correction2_sqrts = [(1 - beta2**n) ** 0.5 for n in t]
            denoms = torch._foreach_add(v, TINY)  # see TINY above
            torch._foreach_sqrt_(denoms)
            torch._foreach_div_(denoms, bias_correction2_sqrts)
            torch._foreach_add_(denoms, eps)
            torch._foreach_addcdiv_(p, m, denoms, step_sizes)


def _slices(params, grads, exp_avgs, exp_avg_sqs, steps, chunk):
    """The five lists cut into groups of flat slices of about `chunk` elements each (views, so
    updating a slice updates the parameter), or one group of whole tensors if chunk is None.
    A non-contiguous tensor, which has no flat view, stays whole."""
    if chunk is None:
        yield params, grads, exp_avgs, exp_avg_sqs, steps
        return
    group, size = [], 0
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if not all(x.is_contiguous() for x in (p, g, m, v)):
            yield [p], [g], [m], [v], [t]
            continue
        flat = [x.view(-1) for x in (p, g, m, v)]
        for start in range(0, p.numel(), chunk):
            group.append([x[start : start + chunk] for x in flat] + [t])
            size += group[-1][0].numel()
            if size >= chunk:
                yield [list(column) for column in zip(*group)]
                group, size = [], 0
    if group:
        yield [list(column) for column in zip(*group)]
