"""LLM-RG4's four input scenarios and the single-scenario round-robin sampler."""
import pytest

from rrg_lite.systems.llm_rg4.scenarios import SCENARIOS, Scenario, as_scenario, round_robin_batches, scenario_of


def test_scenarios_and_their_inputs():
    assert [s.value for s in SCENARIOS] == ["sn", "sw", "mn", "mw"]
    assert scenario_of(False, False) is Scenario.SN
    assert scenario_of(False, True) is Scenario.SW
    assert scenario_of(True, False) is Scenario.MN
    assert scenario_of(True, True) is Scenario.MW
    assert Scenario.SN.inputs == ("frontal",)
    assert Scenario.SW.inputs == ("frontal", "prior")
    assert Scenario.MN.inputs == ("frontal", "lateral")
    assert Scenario.MW.inputs == ("frontal", "lateral", "prior")
    for s in SCENARIOS:
        assert scenario_of(s.has_lateral, s.has_prior) is s and str(s) == s.value
    assert as_scenario("mw") is Scenario.MW and as_scenario(Scenario.SW) is Scenario.SW
    with pytest.raises(ValueError, match=r"unknown scenario 'xx'.*'sn', 'sw', 'mn', 'mw'"):
        as_scenario("xx")


def test_round_robin_by_hand():
    # sizes 5, 2, 0, 3 with batch 2: sn -> 3 batches, sw -> 1, mn -> 0, mw -> 2.
    # turns: (sn, sw, mw), (sn, mw), (sn): scenarios in table order, the exhausted ones skipped
    pools = {"sn": [0, 1, 2, 3, 4], "sw": [10, 11], "mn": [], Scenario.MW: [20, 21, 22]}
    batches = list(round_robin_batches(pools, batch_size=2, seed=0))
    assert [s.value for s, _ in batches] == ["sn", "sw", "mw", "sn", "mw", "sn"]
    assert [len(b) for _, b in batches] == [2, 2, 2, 2, 1, 1]


def test_every_batch_is_one_scenario_and_an_epoch_covers_every_item_once():
    pools = {"sn": list(range(0, 37)), "sw": list(range(100, 111)), "mn": list(range(200, 223)),
             "mw": list(range(300, 305))}
    owner = {i: s for s, idx in pools.items() for i in idx}
    batches = list(round_robin_batches(pools, batch_size=4, seed=1))
    for scenario, batch in batches:
        assert {owner[i] for i in batch} == {scenario.value}
        assert 1 <= len(batch) <= 4
    seen = [i for _, b in batches for i in b]
    assert sorted(seen) == sorted(owner)                           # all items, each exactly once
    # seeded: same seed, same epoch; another seed, another order
    assert batches == list(round_robin_batches(pools, 4, seed=1))
    assert batches != list(round_robin_batches(pools, 4, seed=2))
    # drop_last keeps only full batches: 37 // 4 + 11 // 4 + 23 // 4 + 5 // 4 = 9 + 2 + 5 + 1
    full = list(round_robin_batches(pools, 4, seed=1, drop_last=True))
    assert len(full) == 17 and all(len(b) == 4 for _, b in full)


def test_round_robin_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        list(round_robin_batches({"sn": [0]}, 0, seed=0))
    with pytest.raises(ValueError, match=r"index 3 is listed twice \(under 'sn' and 'mw'\)"):
        list(round_robin_batches({"sn": [3], "mw": [3]}, 2, seed=0))
    with pytest.raises(ValueError, match="unknown scenario 'single'"):
        list(round_robin_batches({"single": [0]}, 2, seed=0))
