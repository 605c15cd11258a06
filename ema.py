"""An exponential moving average (EMA) of the weights, used to evaluate and predict (train.py --ema).

Averaging the iterates of a stochastic optimizer smooths out the noise of its last steps
(Polyak & Juditsky 1992). The exponential form forgets old iterates, so it follows a model that
is still moving: Mean Teachers (Tarvainen & Valpola 2017) evaluate such an average, and TF's
ExponentialMovingAverage keeps one; SWA (Izmailov et al. 2018) is the uniform average over the
last epochs. Training itself never sees the average: it only replaces the weights that are
scored after each epoch, kept as best.pt and used for every prediction.

After optimizer step t = 1, 2, ... with weights w_t:

    ema_t = d_t * ema_{t-1} + (1 - d_t) * w_t,      d_t = decay * (1 - decay^(t-1)) / (1 - decay^t)

which makes ema_t = sum_i decay^(t-i) w_i / sum_i decay^(t-i): the mean of every step's weights,
each weighted by decay per step of age (a window of about 1 / (1 - decay) steps). d_1 = 0, so the
average starts at the first step's weights, not at the pretrained encoder with randomly initialised
heads: this is Adam's bias correction of a moving average. TF's num_updates warm-up,
d_t = min(decay, (1 + t) / (10 + t)), also forgets the start, but until t = 9 / (1 - decay) (9,000
steps at 0.999, three main jobs) it sets the window itself, about t / 9 steps, so `decay` would
barely matter in a 3,000-step run.

    ema = EMA(model, decay=0.999)
    loss.backward(); optimizer.step(); ema.update(model)
    with ema.applied(model):
        evaluate(model)
"""

import contextlib

import torch


class EMA:
    """The moving average of a model's parameters (in model.parameters() order), and the update count."""

    def __init__(self, model, decay):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.params = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model):
        """Fold the model's weights after one more optimizer step into the average."""
        self.updates += 1
        weight = (1 - self.decay) / (1 - self.decay**self.updates)  # 1 - d_t: exactly 1 at t = 1
        torch._foreach_lerp_(self.params, [p.detach() for p in model.parameters()], weight)

    @contextlib.contextmanager
    def applied(self, model):
        """The model holds the averaged weights inside the `with` block, its own again after it."""
        params = list(model.parameters())
        own = [p.detach().clone() for p in params]
        with torch.no_grad():
            torch._foreach_copy_(params, self.params)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, own)

    def state_dict(self):
        return {"decay": self.decay, "updates": self.updates, "params": self.params}

    def load_state_dict(self, state):
        shapes = [p.shape for p in self.params]
        if [p.shape for p in state["params"]] != shapes or state["decay"] != self.decay:
            raise ValueError("the saved moving average does not fit this model and --ema")
        self.params = [p.to(mine.device) for p, mine in zip(state["params"], self.params)]
        self.updates = state["updates"]
