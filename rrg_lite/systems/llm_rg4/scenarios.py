"""LLM-RG4's four input scenarios and the single-scenario round-robin sampler of its stage 2.

The task (§"Problem Formulation") is T_c = L_g(I_f, I_l, T_p, T_h, T_i): the frontal image I_f is always there;
the lateral image I_l and the prior report T_p may be absent (indication T_i and history T_h too, but they are
prompt text and do not define a scenario). Two optional inputs give four scenarios::

    scenario   lateral I_l   prior report T_p   the paper's name
    sn         –             –                  single view, no longitudinal data
    sw         –             ✓                  single view, with longitudinal data
    mn         ✓             –                  multi-view, no longitudinal data
    mw         ✓             ✓                  multi-view, with longitudinal data

What a report may say depends on the scenario (comparisons only with a prior, views only with two views); that is
what :mod:`.discriminator` uses to score input-agnostic hallucinations.

Stage 2 (code values, SYSTEMS.md §3) trains on all four scenarios, **each mini-batch from one scenario, the
scenarios in turn** (round-robin): a batch then has one token layout (the interleaved baseline's token count grows
with the inputs) and one prompt template. :func:`round_robin_batches` is that sampler. What happens when one
scenario runs out of items before the others is not stated; we keep going with the scenarios that still have
items, so every item is seen exactly once per epoch.
"""
from __future__ import annotations

import enum
from typing import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Scenario", "SCENARIOS", "scenario_of", "as_scenario", "round_robin_batches"]


class Scenario(str, enum.Enum):
    """The four scenarios; the value is the paper's two-letter name (``Scenario("sw") is Scenario.SW``)."""

    SN = "sn"
    SW = "sw"
    MN = "mn"
    MW = "mw"

    @property
    def has_lateral(self) -> bool:
        """Multi-view: a lateral image I_l besides the frontal one (the paper's "m")."""
        return self.value[0] == "m"

    @property
    def has_prior(self) -> bool:
        """Longitudinal: the prior study's report T_p is an input (the paper's "w", *with*)."""
        return self.value[1] == "w"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The image/text inputs the model reads, in ATF's fixed order: ``("frontal", ["lateral"], ["prior"])``."""
        return ("frontal",) + (("lateral",) if self.has_lateral else ()) + (("prior",) if self.has_prior else ())

    def __str__(self) -> str:
        return self.value


#: The scenarios in the paper's table order.
SCENARIOS: tuple[Scenario, ...] = (Scenario.SN, Scenario.SW, Scenario.MN, Scenario.MW)


def scenario_of(has_lateral: bool, has_prior: bool) -> Scenario:
    """The scenario of a sample from which optional inputs it has: (False, True) -> ``Scenario.SW``."""
    return Scenario(("m" if has_lateral else "s") + ("w" if has_prior else "n"))


def as_scenario(key) -> Scenario:
    """``Scenario.SW`` or ``"sw"`` -> ``Scenario.SW``; anything else is a ValueError naming the four."""
    try:
        return Scenario(str(key.value if isinstance(key, Scenario) else key))
    except ValueError:
        raise ValueError(f"unknown scenario {key!r}; choose from {[s.value for s in SCENARIOS]}") from None


def round_robin_batches(indices_by_scenario: Mapping[Scenario | str, Sequence[int]], batch_size: int, seed: int,
                        drop_last: bool = False) -> Iterator[tuple[Scenario, list[int]]]:
    """One epoch of single-scenario mini-batches, the scenarios taking turns (sn, sw, mn, mw, sn, …).

    ``indices_by_scenario``: scenario (enum or "sn"…) -> dataset indices of that scenario. Each scenario's indices
    are shuffled with ``seed`` and cut into batches of ``batch_size`` (the last one shorter unless ``drop_last``);
    the turns go in :data:`SCENARIOS` order, skipping scenarios with no batches left. Yields
    ``(scenario, [indices])``. Every index appears exactly once per epoch (``drop_last=False``); a new epoch is a
    new call with another seed.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"round_robin_batches: batch_size must be a positive int, got {batch_size!r}")
    pools: dict[Scenario, list[int]] = {}
    for key, idx in indices_by_scenario.items():
        pools[as_scenario(key)] = [int(i) for i in idx]   # "sn" and Scenario.SN are one dict key (a str enum)
    seen: dict[int, Scenario] = {}
    for sc, idx in pools.items():
        for i in idx:
            if i in seen:                       # an item has one scenario, and is seen once per epoch
                raise ValueError(f"round_robin_batches: index {i} is listed twice "
                                 f"(under {seen[i].value!r} and {sc.value!r})")
            seen[i] = sc
    rng = np.random.default_rng(seed)
    queues = {}
    for sc in SCENARIOS:                       # fixed order, so the shuffles do not depend on the dict's order
        idx = pools.get(sc, [])
        order = [idx[j] for j in rng.permutation(len(idx))]
        batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
        if drop_last and batches and len(batches[-1]) < batch_size:
            batches.pop()
        queues[sc] = batches
    for turn in range(max(len(b) for b in queues.values())):
        for sc in SCENARIOS:
            if turn < len(queues[sc]):          # a scenario that ran out is skipped, the others go on
                yield sc, queues[sc][turn]
