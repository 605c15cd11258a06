"""Multitask schedules: which task's batch (or batches) each training step uses.

A schedule is a pure function of (epoch, step): the same seed always gives the same task
sequence, so an interrupted run resumes on exactly the task it would have trained next.

Sampling schedules: an epoch is `steps_per_epoch` steps, each drawing one task at random.
  uniform         task i with probability 1/n
  proportional    task i with probability N_i / sum_j N_j, N_i its real training rows
  annealed        p_i ~ N_i ** alpha, alpha = 1 - 0.8 (e - 1) / (E - 1) (Stickland & Murray 2019;
                  report "Tuning Up BERT" §4.5): large datasets dominate early, tasks even out
                  towards the last epoch

Data-defined schedules: the epoch is set by the batches of one pass over each task (B_i).
  round-robin     sst, para, sts, sst, ... one batch of each in turn, until the smaller tasks'
                  batches are used up: R = the largest B_i but one rounds. The largest task gives
                  R of its batches per epoch and continues where it stopped in the next: the
                  "sampled round-robin" of "BERT and Beyond" §3.4
  max-size-cycle  in turn until the largest task's batches are used up: max B_i rounds, smaller
                  tasks cycled ("BERT and Beyond" §3.4)
  staggered       the first `stagger_epochs` epochs are one pass over para alone, then
                  round-robin ("BERT and Beyond" §3.4, its final strategy), in one run
  sequential      a whole pass over sst, then one over para, then sts ("individual training",
                  BERT++ §3; SUSTech §3.2 names it as what even batching replaces)
  even            the batches of one pass over every task, shuffled together into one stream
                  (SUSTech §3.2, "even batching")
  summed          every task every step, the loss the weighted sum of the task losses (BERT++
                  Model C): max B_i steps, each task until its own pass ends. The schedule PCGrad
                  needs, since it compares the tasks' gradients within one step
  cycled-summed   every task every step for max B_i steps, smaller tasks cycled (BERT++ Model H)
With one task, every schedule's epoch is one pass over it. `steps_per_epoch`, when given, sets
every schedule's epoch length instead (a fixed budget, e.g. to compare schedules at equal cost):
a data-defined order is then cut short, or wraps around, at that many steps.

How an epoch lines up with the data. The training loop keeps one endless data.BatchStream per
task and takes that task's next batch whenever the schedule names it. In an epoch of sequential,
even and summed every task, and in max-size-cycle, cycled-summed and staggered's first epochs the
largest task (para), takes exactly B_i batches: one whole pass. Its stream starts at the first
batch of a pass at step 0 and so at every later epoch: every batch of the pass is used exactly
once per epoch. The other tasks' streams (cycled ones, round-robin's largest) simply run on
across epoch boundaries. This holds as long as every epoch is run with the same batch sizes
and streams start at pass 0 (as a new run's and a resumed run's saved streams do).

    schedule = Schedule("even", sizes, batches_per_pass, epochs=3, seed=0)
    for step in range(schedule.steps_in_epoch(epoch)):
        for task in schedule.tasks_for_step(epoch, step): ...next(streams[task])...
"""

import random

SAMPLED = ("annealed", "uniform", "proportional")
DATA_DEFINED = ("round-robin", "max-size-cycle", "staggered", "sequential", "even", "summed", "cycled-summed")
SCHEDULES = SAMPLED + DATA_DEFINED


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
    """sizes: task -> real training rows (the sampling weights; synthetic rows do not count).
    batches_per_pass: task -> batches in one pass over the task at its batch size.
    steps_per_epoch: the epoch of the sampling schedules (needed with several tasks); the
    data-defined schedules take theirs from batches_per_pass unless it is given."""

    def __init__(self, name, sizes, batches_per_pass, epochs, steps_per_epoch=None, seed=0, stagger_epochs=2):
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        if set(sizes) != set(batches_per_pass):
            raise ValueError(
                f"sizes and batches_per_pass name different tasks: {list(sizes)}, {list(batches_per_pass)}"
            )
        self.name, self.sizes, self.epochs, self.seed = name, dict(sizes), epochs, seed
        self.batches = {t: batches_per_pass[t] for t in sizes}
        self.steps_per_epoch, self.stagger_epochs = steps_per_epoch, stagger_epochs
        self.tasks = list(sizes)
        self.largest = max(self.tasks, key=lambda t: self.batches[t])  # the first of equals
        rest = [self.batches[t] for t in self.tasks if t != self.largest]
        self.rounds = max(rest, default=self.batches[self.largest])  # round-robin's rounds per epoch
        if steps_per_epoch is None and name in SAMPLED and len(self.tasks) > 1:
            raise ValueError(f"schedule {name} samples a task per step and needs --steps-per-epoch")
        if name == "staggered" and len(self.tasks) > 1 and "para" not in self.tasks:
            raise ValueError("schedule staggered starts with para alone, and para is not among the tasks")
        self._even = None  # (epoch, order): a cache of the one shuffle even makes per epoch

    def steps_in_epoch(self, epoch):
        """The epoch's length: --steps-per-epoch when given, else the data's (data_steps)."""
        return self.data_steps(epoch) if self.steps_per_epoch is None else self.steps_per_epoch

    def data_steps(self, epoch):
        """The epoch as the data defines it (see the module docstring)."""
        name, n = self.name, len(self.tasks)
        if n == 1:
            return self.batches[self.tasks[0]]
        if name == "staggered":
            return self.batches["para"] if epoch < self.stagger_epochs else n * self.rounds
        if name == "round-robin":
            return n * self.rounds
        if name == "max-size-cycle":
            return n * self.batches[self.largest]
        if name in ("sequential", "even"):
            return sum(self.batches.values())
        return self.batches[self.largest]  # summed, cycled-summed

    def total_steps(self):
        return sum(self.steps_in_epoch(e) for e in range(self.epochs))

    def global_step(self, epoch, step):
        """Steps before `step` of `epoch` since the run began (for the LR schedule and the ETA)."""
        return sum(self.steps_in_epoch(e) for e in range(epoch)) + step

    def tasks_for_step(self, epoch, step):
        """The task(s) whose batch is trained on at `step` (0-based) of `epoch` (0-based)."""
        if not 0 <= step < self.steps_in_epoch(epoch):
            raise IndexError(f"step {step} is outside epoch {epoch} of {self.steps_in_epoch(epoch)} steps")
        if self.name in SAMPLED and len(self.tasks) > 1:
            return self.sampled_task(epoch, step)
        return self.data_defined_tasks(epoch, step)

    def sampled_task(self, epoch, step):
        """[task], drawn with the schedule's task_probabilities for the epoch."""
        # A generator per step, seeded from (seed, step): no hidden state to save for resuming.
        rng = random.Random(self.seed * 1_000_003 + epoch * self.steps_per_epoch + step)
        probs = task_probabilities(self.name, self.sizes, epoch, self.epochs)
        return rng.choices(self.tasks, weights=[probs[t] for t in self.tasks])

    def data_defined_tasks(self, epoch, step):
        """The task(s) of the data-defined schedules, and of any schedule with one task."""
        name = self.name
        if name in DATA_DEFINED:  # with a --steps-per-epoch budget, the data-defined order wraps around
            step %= self.data_steps(epoch)
        if len(self.tasks) == 1 or name == "cycled-summed":
            return list(self.tasks)
        if name == "staggered":
            if epoch < self.stagger_epochs:
                return ["para"]
            name = "round-robin"
        if name in ("round-robin", "max-size-cycle"):
            return [self.tasks[step % len(self.tasks)]]
        if name == "summed":
            return [t for t in self.tasks if step < self.batches[t]]
        if name == "sequential":
            for task in self.tasks:
                if step < self.batches[task]:
                    return [task]
                step -= self.batches[task]
        return [self.even_order(epoch)[step]]  # even, the one schedule left

    def even_order(self, epoch):
        """Every task named once per batch of its pass, shuffled by a generator seeded from (seed, epoch)."""
        if self._even is None or self._even[0] != epoch:  # the cache only saves time: same (seed, epoch), same order
            order = [t for t in self.tasks for _ in range(self.batches[t])]
            random.Random(f"even {self.seed} {epoch}").shuffle(order)
            self._even = (epoch, order)
        return self._even[1]

    def describe(self, epoch):
        """One line for the log: what this epoch trains on and how many steps it has."""
        steps = self.steps_in_epoch(epoch)
        if len(self.tasks) == 1:
            return f"{self.name}: one task, {steps} steps"
        if self.name in SAMPLED:
            probs = task_probabilities(self.name, self.sizes, epoch, self.epochs)
            return f"{self.name} ({', '.join(f'{t} {p:.2f}' for t, p in probs.items())}), {steps} steps"
        largest, others = self.largest, ", ".join(t for t in self.tasks if t != self.largest)
        cycled = f"{largest} one pass; {others} cycled"
        what = {
            "round-robin": f"tasks in turn, {self.rounds} rounds ({largest}: {self.rounds} of its "
            f"{self.batches[largest]} batches)",
            "max-size-cycle": f"tasks in turn, {self.batches[largest]} rounds ({cycled})",
            "sequential": "one pass over " + ", then ".join(f"{t} ({self.batches[t]})" for t in self.tasks),
            "even": "one pass over every task, batches shuffled together",
            "summed": "every task each step until its pass ends ("
            + ", ".join(f"{t} {self.batches[t]}" for t in self.tasks)
            + ")",
            "cycled-summed": f"every task each step ({cycled})",
        }
        if self.name == "staggered":
            if epoch < self.stagger_epochs:
                return f"staggered: para alone, one pass (epoch {epoch + 1} of {self.stagger_epochs}), {steps} steps"
            return f"staggered: {what['round-robin']}, {steps} steps"
        return f"{self.name}: {what[self.name]}, {steps} steps"
