"""M4CXR's task-dataset sampling (Sec. V-D, Tables VII and X): formulas by hand, realised fractions, errors."""
import math

import numpy as np
import pytest

from rrg_lite.systems.m4cxr.sampling import (PAPER_TYPE_RATIOS, TABLE_X, TaskDataset, TaskSampler,
                                             realised_fractions, strategy_probabilities)

# three task-datasets of sizes 100, 300, 600: one MRG, two image-understanding
A = TaskDataset("single_image_mrg", "A", 100, weight=2.0)
B = TaskDataset("finding_grounding", "B", 300, weight=1.0)
C = TaskDataset("phrase_grounding", "C", 600, weight=1.0)
ABC = [A, B, C]

HAND = {
    "empirical": [2 / 4, 1 / 4, 1 / 4],                   # weights 2 : 1 : 1
    "D1": [1 / 3, 1 / 3, 1 / 3],                          # uniform over task-datasets
    "D2": [100 / 1000, 300 / 1000, 600 / 1000],           # proportional to size
    "D3": [1 / 2, 1 / 2 * 1 / 2, 1 / 2 * 1 / 2],          # 2 types present: 1/2 each, then uniform inside IU
    "D4": [1 / 2, 1 / 2 * 300 / 900, 1 / 2 * 600 / 900],  # 1/2 each, then by size inside IU: 1/6, 1/3
}


@pytest.mark.parametrize("strategy", sorted(HAND))
def test_probabilities_by_hand(strategy):
    p = strategy_probabilities(ABC, strategy)
    np.testing.assert_allclose(p, HAND[strategy], rtol=0, atol=1e-12)
    assert math.isclose(p.sum(), 1.0)


@pytest.mark.parametrize("strategy", sorted(HAND))
def test_realised_fractions_of_10k_draws_match_the_formula(strategy):
    sampler = TaskSampler(ABC, strategy, seed=0)
    n = 10_000
    draws = sampler.sample(n)
    got = sampler.realised_fraction(draws)
    expected = sampler.expected_fraction()
    assert list(expected.values()) == pytest.approx(HAND[strategy])
    for name, p in expected.items():
        tol = 4 * math.sqrt(p * (1 - p) / n)             # 4 binomial standard deviations (< 0.02)
        assert abs(got[name] - p) < tol, (strategy, name, got[name], p)


def test_type_ratios_split_types_then_sizes():
    # all three types present: p = the ratios exactly (one dataset per type)
    abc3 = [TaskDataset("single_image_mrg", "A", 100), TaskDataset("finding_grounding", "B", 300),
            TaskDataset("vqa", "C", 600)]
    np.testing.assert_allclose(strategy_probabilities(abc3, "type_ratios"), [0.54, 0.35, 0.11])
    # no VQA dataset (Table VIII, Exp4): 0.54 and 0.35 renormalised over 0.89, IU split by size 1/3 : 2/3
    no_w = [TaskDataset(t.task, t.dataset, t.size) for t in ABC]
    p = strategy_probabilities(no_w, "type_ratios")
    np.testing.assert_allclose(p, [0.54 / 0.89, 0.35 / 0.89 / 3, 0.35 / 0.89 * 2 / 3])
    # hand-tuned weights present: they split a type instead of the sizes (B and C weigh 1 : 1)
    np.testing.assert_allclose(strategy_probabilities(ABC, "type_ratios"), [0.54 / 0.89, 0.35 / 0.89 / 2,
                                                                            0.35 / 0.89 / 2])
    p = strategy_probabilities(abc3, "type_ratios", type_ratios={"mrg": 1, "image_understanding": 1, "vqa": 2})
    np.testing.assert_allclose(p, [0.25, 0.25, 0.5])


def test_table_x_reproduces_the_papers_ratios():
    assert len(TABLE_X) == 50
    sampler = TaskSampler(TABLE_X, "empirical")
    types = sampler.expected_fraction("task_type")
    # Table X weights sum to 380 (MRG), 246 (image understanding), 78 (VQA) of 704 -> 0.54 / 0.35 / 0.11
    assert types["mrg"] == pytest.approx(380 / 704) and round(types["mrg"], 2) == PAPER_TYPE_RATIOS["mrg"]
    assert types["image_understanding"] == pytest.approx(246 / 704) and round(types["image_understanding"], 2) == 0.35
    assert types["vqa"] == pytest.approx(78 / 704) and round(types["vqa"], 2) == 0.11
    # Sec. V-D: under D1, MRG is 3 of the 50 task-datasets and VQA 4
    d1 = TaskSampler(TABLE_X, "per_task_dataset").expected_fraction("task_type")
    assert d1["mrg"] == pytest.approx(3 / 50) and d1["vqa"] == pytest.approx(4 / 50)
    # ... and under D2 (per-size) MS-CXR's phrase grounding is "barely sampled": 638 of 3,048,138 instances
    d2 = TaskSampler(TABLE_X, "D2").expected_fraction()
    assert d2["phrase_grounding/MS-CXR"] == pytest.approx(638 / 3_048_138) and d2["phrase_grounding/MS-CXR"] < 3e-4
    # D3 / D4: one third per task type
    for s in ("D3", "D4"):
        assert list(TaskSampler(TABLE_X, s).expected_fraction("task_type").values()) == pytest.approx([1 / 3] * 3)


def test_deterministic_with_a_seed_and_items_in_range():
    a, b = TaskSampler(ABC, "D2", seed=7), TaskSampler(ABC, "D2", seed=7)
    assert a.sample_items(50) == b.sample_items(50)
    assert not np.array_equal(TaskSampler(ABC, "D2", seed=8).sample(50), TaskSampler(ABC, "D2", seed=7).sample(50))
    for k, j in TaskSampler(ABC, "D1", seed=1).sample_items(500):
        assert 0 <= j < ABC[k].size
    it = iter(TaskSampler(ABC, "D1", seed=1))
    assert isinstance(next(it), tuple)
    assert TaskSampler(ABC, "D1").table()["p"].sum() == pytest.approx(1.0)


def test_grouped_fractions():
    s = TaskSampler(ABC, "D4")
    assert s.expected_fraction("task_type") == pytest.approx({"mrg": 0.5, "image_understanding": 0.5})
    assert s.expected_fraction("task") == pytest.approx({"single_image_mrg": 0.5, "finding_grounding": 1 / 6,
                                                         "phrase_grounding": 1 / 3})
    assert realised_fractions(np.array([0, 0, 1, 2]), ["x", "y", "x"]) == {"x": 0.75, "y": 0.25}


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown sampling strategy 'D5'"):
        TaskSampler(ABC, "D5")
    with pytest.raises(ValueError, match="needs a hand-tuned weight.*single_image_mrg/A"):
        strategy_probabilities([TaskDataset("single_image_mrg", "A", 10)], "empirical")
    with pytest.raises(ValueError, match="listed twice"):
        strategy_probabilities([A, A], "D1")
    with pytest.raises(ValueError, match="no task-datasets"):
        strategy_probabilities([], "D1")
    with pytest.raises(ValueError, match="unknown task 'ocr'"):
        TaskDataset("ocr", "X", 10)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        TaskDataset("vqa", "X", 0)
    with pytest.raises(ValueError, match=r"\['image_understanding'\] have task-datasets but no positive ratio"):
        strategy_probabilities(ABC, "type_ratios", type_ratios={"mrg": 1.0})
    with pytest.raises(ValueError, match="by must be"):
        TaskSampler(ABC).expected_fraction("colour")
    with pytest.raises(ValueError, match=r"draw indices must be in \[0, 3\)"):
        realised_fractions(np.array([0, 3]), ["a", "b", "c"])
