"""Multitask schedules: which task's batch (or batches) each training step uses.

A schedule is a pure function of (epoch, step): the same seed always gives the same task
sequence, so an interrupted run resumes on exactly the task it would have trained next.

  uniform       sample one task per step, each with probability 1/n
  proportional  sample task i with probability N_i / sum_j N_j (dataset sizes)
  annealed      sample task i with p_i ~ N_i ** alpha, alpha = 1 - 0.8 (e - 1) / (E - 1)
                (Stickland & Murray 2019; report "Tuning Up BERT" §4.5): large datasets
                dominate early, tasks even out towards the last epoch
  round-robin   sst, para, sts, sst, ... one task per step in turn
  summed        every task every step; the loss is the weighted sum of the task losses
                (report "BERT++"); the schedule PCGrad needs, since it compares the tasks'
                gradients within one step
"""

import random

SCHEDULES = ("annealed", "uniform", "proportional", "round-robin", "summed")


def annealed_alpha(epoch, epochs):
    """alpha for 0-based `epoch` of `epochs`: 1 in the first epoch down to 0.2 in the last."""
    return 1.0 if epochs <= 1 else 1.0 - 0.8 * epoch / (epochs - 1)


def task_probabilities(name, sizes, epoch, epochs):
    """Sampling probability of each task (dict task -> p) for the sampling schedules."""
    if name == "uniform":
        weights = {t: 1.0 for t in sizes}
    elif name == "proportional":
        weights = dict(sizes)
    elif name == "annealed":
        alpha = annealed_alpha(epoch, epochs)
        weights = {t: n**alpha for t, n in sizes.items()}
    else:
        raise ValueError(f"schedule {name!r} does not sample tasks")
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class Schedule:
    def __init__(self, name, sizes, epochs, steps_per_epoch, seed=0):
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        self.name, self.sizes, self.epochs = name, dict(sizes), epochs
        self.steps_per_epoch, self.seed = steps_per_epoch, seed
        self.tasks = list(sizes)

    def tasks_for_step(self, epoch, step):
        """The task(s) whose batch is trained on at `step` (0-based) of `epoch` (0-based)."""
        if len(self.tasks) == 1 or self.name == "summed":
            return list(self.tasks)
        global_step = epoch * self.steps_per_epoch + step
        if self.name == "round-robin":
            return [self.tasks[global_step % len(self.tasks)]]
        # A generator per step, seeded from (seed, step): no hidden state to save for resuming.
        rng = random.Random(self.seed * 1_000_003 + global_step)
        probs = task_probabilities(self.name, self.sizes, epoch, self.epochs)
        return rng.choices(self.tasks, weights=[probs[t] for t in self.tasks])

    def describe(self, epoch):
        if self.name in ("annealed", "uniform", "proportional") and len(self.tasks) > 1:
            probs = task_probabilities(self.name, self.sizes, epoch, self.epochs)
            return f"{self.name} (" + ", ".join(f"{t} {p:.2f}" for t, p in probs.items()) + ")"
        return self.name
