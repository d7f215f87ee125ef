"""The shipped Accelerate configs load with accelerate's own loader and say what their names promise (offline, no GPU).

Each file goes through the path ``accelerate launch --config_file`` takes: ``load_config_from_file`` (which
rejects unknown keys), ``_validate_launch_command`` (which turns the file into launch flags), and, for FSDP and
DeepSpeed, the environment the launcher would hand to the processes, parsed back by accelerate's plugins.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

accelerate = pytest.importorskip("accelerate")
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file  # noqa: E402
from accelerate.commands.launch import _validate_launch_command, launch_command_parser  # noqa: E402

from rrg_lite.configs import ACCELERATE_CONFIGS, accelerate_config  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "rrg_lite" / "configs" / "accelerate"

# name -> (distributed_type, fields the file must have, with their values)
EXPECTED = {
    "single_gpu": ("NO", {"num_processes": 1, "use_cpu": False}),
    "ddp": ("MULTI_GPU", {}),
    "deepspeed_zero2": ("DEEPSPEED", {}),
    "fsdp": ("FSDP", {}),
}


def _launch_args(path: Path):
    """The arguments ``accelerate launch`` ends up with, as ``launch_command`` prepares them (no process started)."""
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "rrg_lite.run", "mu2"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    return args


def test_every_shipped_config_is_tested_and_found_through_the_package():
    shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert shipped == sorted(EXPECTED) == sorted(ACCELERATE_CONFIGS)
    for name in shipped:
        assert accelerate_config(name) == CONFIG_DIR / f"{name}.yaml"
    with pytest.raises(ValueError, match="unknown Accelerate config 'zero3'; shipped: "):
        accelerate_config("zero3")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerates_loader(name):
    kind, fields = EXPECTED[name]
    cfg = load_config_from_file(str(accelerate_config(name)))
    assert isinstance(cfg, ClusterConfig)
    assert str(cfg.distributed_type).split(".")[-1] == kind
    assert cfg.mixed_precision == "bf16", "every shipped config trains in bf16 (fp32 master weights)"
    assert cfg.num_machines == 1 and cfg.compute_environment == "LOCAL_MACHINE"
    for key, value in fields.items():
        assert getattr(cfg, key) == value, key
    if kind != "NO":
        assert cfg.num_processes >= 2 and cfg.gpu_ids == "all"


def test_an_unknown_key_is_rejected_by_the_loader(tmp_path):
    """The check above means something: accelerate refuses a config with a misspelt key."""
    bad = yaml.safe_load(accelerate_config("ddp").read_text())
    bad["mixed_precison"] = bad.pop("mixed_precision")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="unknown keys"):
        load_config_from_file(str(path))


@pytest.mark.parametrize("name, flag", [("single_gpu", None), ("ddp", "multi_gpu"), ("deepspeed_zero2", "use_deepspeed"),
                                        ("fsdp", "use_fsdp")])
def test_launch_reads_the_config_as_intended(name, flag):
    args = _launch_args(accelerate_config(name))
    for f in ("multi_gpu", "use_deepspeed", "use_fsdp"):
        assert bool(getattr(args, f)) == (f == flag), f
    assert args.mixed_precision == "bf16"
    assert not args.cpu


def test_deepspeed_config_is_zero2_and_leaves_accumulation_to_the_chapter():
    from accelerate.utils import prepare_deepspeed_cmd_env

    args = _launch_args(accelerate_config("deepspeed_zero2"))
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == "none"
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"] == "none"
    assert float(env["ACCELERATE_GRADIENT_CLIPPING"]) == 1.0
    # A value in the file would override the chapter's grad_accum (accelerate prefers DeepSpeed's value).
    assert "gradient_accumulation_steps" not in yaml.safe_load(accelerate_config("deepspeed_zero2").read_text())[
        "deepspeed_config"]


def test_fsdp_config_builds_accelerates_fsdp_plugin(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin, prepare_multi_gpu_env
    from torch.distributed.fsdp import CPUOffloadPolicy

    env = prepare_multi_gpu_env(_launch_args(accelerate_config("fsdp")))
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    assert str(plugin.state_dict_type).endswith("SHARDED_STATE_DICT"), "resumable sharded checkpoints"
    assert plugin.reshard_after_forward is True and not isinstance(plugin.cpu_offload, CPUOffloadPolicy)
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"
