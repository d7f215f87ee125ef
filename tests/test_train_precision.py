"""Two training runs with different precisions in one process (a notebook, a test suite) both work."""
from rrg_lite.train.loop import TrainConfig, make_accelerator


def test_precision_can_change_between_runs():
    assert make_accelerator(TrainConfig(mixed_precision="bf16")).mixed_precision == "bf16"
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"
