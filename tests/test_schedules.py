"""Multitask schedules (schedules.py): sampling frequencies against their formulas, the exact
orders of the data-defined schedules, every batch once per epoch with real BatchStreams, and the
same task for the same (epoch, step) whatever was asked before (resume)."""

import math
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from data import BatchStream
from schedules import DATA_DEFINED, SAMPLED, SCHEDULES, Schedule, annealed_alpha, task_probabilities

SIZES = {"sst": 80, "para": 190, "sts": 45}  # rows
BATCHES = {"sst": 5, "para": 12, "sts": 3}  # batches per pass at batch size 16


def schedule(name, epochs=4, **kw):
    if name in SAMPLED:
        kw.setdefault("steps_per_epoch", 50)
    return Schedule(name, SIZES, BATCHES, epochs, **kw)


def epoch_tasks(s, epoch):
    return [tuple(s.tasks_for_step(epoch, i)) for i in range(s.steps_in_epoch(epoch))]


# ----------------------------------------------------------------------------
# sampling schedules


def test_annealed_probabilities_follow_the_formula():
    sizes = {"sst": 8544, "para": 13507, "sts": 6040}
    assert annealed_alpha(0, 5) == 1.0 and math.isclose(annealed_alpha(4, 5), 0.2)
    first = task_probabilities("annealed", sizes, 0, 5)
    assert math.isclose(first["para"], 13507 / sum(sizes.values()))
    last = task_probabilities("annealed", sizes, 4, 5)
    total = sum(n**0.2 for n in sizes.values())
    assert all(math.isclose(last[t], n**0.2 / total) for t, n in sizes.items())


def test_annealed_alpha_by_hand_and_with_one_or_two_epochs():
    # alpha = 1 - 0.8 e / (E - 1), e 0-based: E = 5 gives 1, 0.8, 0.6, 0.4, 0.2
    assert [annealed_alpha(e, 5) for e in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert [annealed_alpha(e, 2) for e in range(2)] == pytest.approx([1.0, 0.2])  # the last epoch is 0.2 already
    assert annealed_alpha(0, 1) == 1.0  # one epoch: the first, alpha 1 (no division by E - 1 = 0)
    sizes = {"sst": 100, "para": 300}
    assert task_probabilities("annealed", sizes, 0, 1) == pytest.approx({"sst": 0.25, "para": 0.75})  # proportional


def test_uniform_and_proportional_probabilities_by_hand():
    sizes = {"sst": 100, "para": 300, "sts": 100}
    assert task_probabilities("uniform", sizes, 0, 3) == pytest.approx({"sst": 1 / 3, "para": 1 / 3, "sts": 1 / 3})
    assert task_probabilities("proportional", sizes, 2, 3) == pytest.approx({"sst": 0.2, "para": 0.6, "sts": 0.2})


@pytest.mark.parametrize("name", SAMPLED)
def test_sampled_frequencies_match_the_formula(name):
    sizes = {"sst": 100, "para": 300, "sts": 100}
    s = Schedule(name, sizes, BATCHES, epochs=3, steps_per_epoch=6000, seed=3)
    for epoch in (0, 2):
        counts = Counter(s.tasks_for_step(epoch, i)[0] for i in range(6000))
        for task, p in task_probabilities(name, sizes, epoch, 3).items():
            assert abs(counts[task] / 6000 - p) < 0.02, (task, counts[task], p)
    assert epoch_tasks(s, 1) == epoch_tasks(Schedule(name, sizes, BATCHES, 3, steps_per_epoch=6000, seed=3), 1)
    assert epoch_tasks(s, 1) != epoch_tasks(Schedule(name, sizes, BATCHES, 3, steps_per_epoch=6000, seed=4), 1)


def test_two_tasks_are_sampled_too():
    # Two tasks are several: proportional draws para with p = 300 / 400 = 0.75, every step one task.
    s = Schedule("proportional", {"sst": 100, "para": 300}, {"sst": 5, "para": 12}, 2, steps_per_epoch=4000, seed=0)
    counts = Counter(tuple(s.tasks_for_step(1, i)) for i in range(4000))
    assert set(counts) == {("sst",), ("para",)} and abs(counts[("para",)] / 4000 - 0.75) < 0.03


def test_another_seed_or_epoch_draws_anew():
    # Each step's generator is seeded from (seed, epoch, step); seeds 3 and 4 give unrelated draws,
    # not one sequence shifted by a step (which a seed added to the step number would give).
    a, b = (Schedule("uniform", SIZES, BATCHES, 3, steps_per_epoch=400, seed=k) for k in (3, 4))
    assert epoch_tasks(b, 0)[:-1] != epoch_tasks(a, 0)[1:]
    assert epoch_tasks(b, 0) != epoch_tasks(a, 0)  # the seed counts from the first epoch on
    # nor is an epoch the one before it, read backwards or shifted (seed 0: the epoch's own offset alone)
    zero = Schedule("uniform", SIZES, BATCHES, 3, steps_per_epoch=400, seed=0)
    assert epoch_tasks(zero, 1)[1:] != epoch_tasks(zero, 0)[:0:-1]
    assert epoch_tasks(zero, 1)[:-1] != epoch_tasks(zero, 0)[1:]  # nor shifted by a step


# ----------------------------------------------------------------------------
# data-defined schedules: exact orders and counts


def test_round_robin_is_sampled_round_robin():
    s = schedule("round-robin")
    # 5 rounds: the smaller tasks' most batches (sst's 5); sts cycles, para gives 5 of its 12
    assert s.steps_in_epoch(0) == 15
    assert epoch_tasks(s, 0) == [("sst",), ("para",), ("sts",)] * 5
    assert epoch_tasks(s, 3) == epoch_tasks(s, 0)


def test_max_size_cycle_runs_until_the_largest_task_is_used_up():
    s = schedule("max-size-cycle")
    assert s.steps_in_epoch(0) == 36 and epoch_tasks(s, 0) == [("sst",), ("para",), ("sts",)] * 12


def test_staggered_is_para_alone_then_round_robin():
    s = schedule("staggered", epochs=4, stagger_epochs=2)
    assert [s.steps_in_epoch(e) for e in range(4)] == [12, 12, 15, 15]
    assert epoch_tasks(s, 0) == epoch_tasks(s, 1) == [("para",)] * 12
    assert epoch_tasks(s, 2) == [("sst",), ("para",), ("sts",)] * 5
    assert s.total_steps() == 54 and s.global_step(2, 4) == 28
    one = schedule("staggered", stagger_epochs=1)
    assert one.steps_in_epoch(1) == 15 and one.tasks_for_step(1, 0) == ["sst"]


def test_sequential_is_one_pass_of_each_task_in_turn():
    s = schedule("sequential")
    assert epoch_tasks(s, 0) == [("sst",)] * 5 + [("para",)] * 12 + [("sts",)] * 3
    assert epoch_tasks(s, 2) == epoch_tasks(s, 0)


def test_even_shuffles_one_pass_of_every_task():
    s = schedule("even", seed=1)
    orders = [epoch_tasks(s, e) for e in range(3)]
    for order in orders:
        assert Counter(t for (t,) in order) == Counter(BATCHES)  # each task exactly one pass
    assert orders[0] != orders[1] != orders[2]  # a new shuffle each epoch...
    assert orders[0] != sorted(orders[0], key=lambda t: list(SIZES).index(t[0]))  # ...mixing the tasks
    assert epoch_tasks(schedule("even", seed=2), 0) != orders[0]


def test_summed_and_cycled_summed():
    s = schedule("summed")
    assert s.steps_in_epoch(0) == 12
    assert epoch_tasks(s, 0) == [("sst", "para", "sts")] * 3 + [("sst", "para")] * 2 + [("para",)] * 7
    c = schedule("cycled-summed")
    assert epoch_tasks(c, 1) == [("sst", "para", "sts")] * 12


@pytest.mark.parametrize("name", SCHEDULES)
def test_one_task_epoch_is_one_pass(name):
    s = Schedule(name, {"sst": 80}, {"sst": 5}, epochs=2)
    assert s.steps_in_epoch(0) == 5 and epoch_tasks(s, 1) == [("sst",)] * 5
    assert s.describe(0) == f"{name}: one task, 5 steps"
    assert Schedule(name, {"sst": 80}, {"sst": 5}, 2, steps_per_epoch=7).steps_in_epoch(0) == 7  # a budget


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule("nope")
    with pytest.raises(ValueError, match="needs --steps-per-epoch"):
        Schedule("annealed", SIZES, BATCHES, 2)
    with pytest.raises(ValueError, match="needs --steps-per-epoch"):  # two tasks are already several
        Schedule("uniform", {"sst": 80, "sts": 45}, {"sst": 5, "sts": 3}, 2)
    with pytest.raises(ValueError, match="para is not among"):
        Schedule("staggered", {"sst": 1, "sts": 1}, {"sst": 1, "sts": 1}, 2)
    with pytest.raises(IndexError):
        schedule("sequential").tasks_for_step(0, 20)


@pytest.mark.parametrize("name", SCHEDULES)
def test_describe_names_the_steps(name):
    s = schedule(name)
    assert s.describe(0).startswith(name) and f"{s.steps_in_epoch(0)} steps" in s.describe(0)


# ----------------------------------------------------------------------------
# with real BatchStreams, and resuming


def streams(seed=0):
    rng = np.random.default_rng(seed)
    sizes = {"sst": 80, "para": 190, "sts": 45}
    fake = {t: SimpleNamespace(lengths=rng.integers(3, 30, n)) for t, n in sizes.items()}
    return {t: BatchStream(fake[t], 16, seed=i) for i, t in enumerate(sizes)}


def run_epochs(s, taken, epochs):
    """The batches each task's stream gave in each epoch: [{task: [batch, ...]}, ...]."""
    used = []
    for epoch in range(epochs):
        used.append({t: [] for t in BATCHES})
        for step in range(s.steps_in_epoch(epoch)):
            for task in s.tasks_for_step(epoch, step):
                used[-1][task].append(next(taken[task]))
    return used


def one_pass(batches, task):
    """Whether the batches hold every example of the task exactly once."""
    return sorted(i for batch in batches for i in batch) == list(range(SIZES[task]))


# The tasks that take one whole pass per epoch (staggered: in its para-alone epochs).
WHOLE = {
    "max-size-cycle": ["para"],
    "staggered": ["para"],
    "sequential": list(BATCHES),
    "even": list(BATCHES),
    "summed": list(BATCHES),
    "cycled-summed": ["para"],
}


def test_whole_pass_table_covers_every_data_defined_schedule():
    assert set(WHOLE) | {"round-robin"} == set(DATA_DEFINED)


@pytest.mark.parametrize("name", WHOLE)
def test_every_batch_of_the_epoch_once(name):
    s, taken = schedule(name, epochs=3), streams()
    assert {t: st.batches_per_pass for t, st in taken.items()} == BATCHES
    used = run_epochs(s, taken, 3)
    for epoch in range(2 if name == "staggered" else 3):
        for task in WHOLE[name]:
            assert len(used[epoch][task]) == BATCHES[task] and one_pass(used[epoch][task], task)
    if name in ("max-size-cycle", "cycled-summed"):  # the smaller tasks cycled, a pass and more per epoch
        assert [len(used[0][t]) for t in BATCHES] == [12, 12, 12]


def test_round_robin_walks_through_the_largest_task_across_epochs():
    used = run_epochs(schedule("round-robin", epochs=3), streams(), 3)
    assert [len(u["para"]) for u in used] == [5, 5, 5]  # 5 of its 12 batches per epoch
    para = [b for u in used for b in u["para"]]
    assert one_pass(para[:12], "para")  # no batch repeated before the pass is through


@pytest.mark.parametrize("name", SCHEDULES)
def test_same_task_for_the_same_step_whatever_came_before(name):
    s = schedule(name, epochs=3)
    steps = [(e, i) for e in range(3) for i in range(s.steps_in_epoch(e))]
    in_order = {key: s.tasks_for_step(*key) for key in steps}
    shuffled = steps[:]
    random.Random(0).shuffle(shuffled)
    fresh = schedule(name, epochs=3)  # as a resumed run builds it
    assert all(fresh.tasks_for_step(*key) == in_order[key] for key in shuffled)


@pytest.mark.parametrize("name", ["sequential", "even", "summed", "max-size-cycle"])
def test_a_step_budget_cuts_or_wraps_a_data_defined_epoch(name):
    natural = schedule(name)
    n = natural.steps_in_epoch(0)
    short, long = schedule(name, steps_per_epoch=n - 3), schedule(name, steps_per_epoch=n + 4)
    assert short.steps_in_epoch(0) == n - 3 and epoch_tasks(short, 0) == epoch_tasks(natural, 0)[: n - 3]
    assert epoch_tasks(long, 0) == epoch_tasks(natural, 0) + epoch_tasks(natural, 0)[:4]
