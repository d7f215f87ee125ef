"""Named parameter sets shared by the notebooks and the scripts.

Every chapter has one module here, ``rrg_lite/profiles/<chapter>.py``, holding a dict ``PROFILES`` that maps a
profile name (``"cpu"``, ``"full"``, ...) to the chapter's parameters. A notebook's ``parameters`` cell sets
``profile = "cpu"`` plus overrides that default to ``None`` ("let the profile decide"); papermill replaces them::

    cfg = load_profile("mllm", profile, llm=llm, data_root=data_root)
    check_profile(cfg)            # full scale: data root, weights, LLM and device exist, before any work
    cfg.llm, cfg.steps            # attribute access
    cfg.as_dict()                 # everything, for logging

Unknown chapters, unknown profiles, unknown parameter names and values of the wrong type fail with a message
that says what is allowed, because a typo in a papermill ``-p`` flag should never silently run the CPU demo.
Every chapter names the same setting the same way (:mod:`rrg_lite.profiles._schema`: ``data_root``, ``encoder``,
``encoder_weights``, ``encoder_width``, ``llm``, ``output_dir``, ``precision``, ``device``, ``seed``).
:func:`check_profile` is the fail-fast check a chapter runs in its first cells: it names everything that is
missing (a data folder, weights, a GPU) and what to do about it, instead of failing minutes into the run.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from . import _schema

__all__ = ["Profile", "ProfileError", "ProfileCheckError", "load_profile", "check_profile", "resolve_device",
           "available_chapters", "available_profiles"]


class ProfileError(ValueError):
    """A profile, a parameter name or a parameter value that the chapter does not accept."""


class ProfileCheckError(ProfileError):
    """A profile whose data, weights or device are not there; ``problems`` lists each one with what to do."""

    def __init__(self, chapter: str, name: str, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"profile {name!r} of chapter {chapter!r} cannot run here:\n{lines}")


class Profile:
    """A read-only set of parameters: ``cfg.steps`` or ``cfg["steps"]``."""

    def __init__(self, chapter: str, name: str, values: Mapping[str, Any]):
        object.__setattr__(self, "chapter", chapter)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            new = _schema.RENAMED.get(key)
            if new is not None and new in self._values:
                warnings.warn(f"profile parameter {key!r} is now called {new!r}", DeprecationWarning, stacklevel=2)
                return self._values[new]
            raise AttributeError(
                f"profile {self.chapter}/{self.name} has no parameter {key!r}; "
                f"it has: {', '.join(sorted(self._values))}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self.__getattr__(key)

    def __setattr__(self, key, value):
        raise AttributeError("profiles are read-only; pass overrides to load_profile()")

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Profile({self.chapter}/{self.name}: {body})"


def available_chapters() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _chapter_profiles(chapter: str) -> dict[str, dict[str, Any]]:
    if chapter not in available_chapters():
        raise ProfileError(f"unknown chapter {chapter!r}; chapters with profiles: {', '.join(available_chapters())}")
    module = importlib.import_module(f"{__name__}.{chapter}")
    return module.PROFILES


def available_profiles(chapter: str) -> list[str]:
    return sorted(_chapter_profiles(chapter))


def _check_type(chapter: str, key: str, default: Any, value: Any) -> Any:
    """Accept ``value`` if it has the default's type (ints for floats; anything where the default is None)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = type(default)(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ProfileError(
            f"parameter {key!r} of chapter {chapter!r} must be {type(default).__name__} "
            f"(like the profile's {default!r}), got {type(value).__name__} {value!r}"
        )
    return value


def load_profile(chapter: str, name: str = "cpu", **overrides: Any) -> Profile:
    """The parameters of ``chapter`` under profile ``name``, with ``overrides`` applied.

    An override that is ``None`` keeps the profile's value, so notebooks can pass every papermill parameter.
    """
    profiles = _chapter_profiles(chapter)
    if name not in profiles:
        raise ProfileError(
            f"unknown profile {name!r} for chapter {chapter!r}; choose one of: {', '.join(sorted(profiles))}"
        )
    values = dict(profiles[name])
    for key, value in overrides.items():
        if key not in values:
            new = _schema.RENAMED.get(key)
            hint = f" (it is called {new!r} now)" if new in values else ""
            raise ProfileError(
                f"chapter {chapter!r} has no parameter {key!r}{hint}; its parameters are: {', '.join(sorted(values))}"
            )
        if value is not None:
            values[key] = _check_type(chapter, key, values[key], value)
    for key in _schema.COMMON_FIELDS:
        if key in values:
            try:
                values[key] = _schema.check_value(chapter, key, values[key])
            except ValueError as err:
                raise ProfileError(str(err)) from None
    _set_threads(values.get("threads"))
    return Profile(chapter, name, values)


def _set_threads(profile_threads: int | None) -> None:
    """Thread count for this process: ``$RRG_THREADS`` if set (CI, parallel workers), else the profile's."""
    from rrg_lite.runtime import THREADS_ENV, set_threads

    if os.environ.get(THREADS_ENV, "").strip():
        set_threads()
    elif profile_threads:
        set_threads(profile_threads)


def _chapter_rules(chapter: str, values: Mapping[str, Any]) -> tuple[dict, tuple, tuple]:
    module = importlib.import_module(f"{__name__}.{chapter}")
    # IGNORED_WITH = {"sft_checkpoint": ("llm",)}: with sft_checkpoint set, llm is not used, so not checked
    ignored = {k for key, keys in getattr(module, "IGNORED_WITH", {}).items() if values.get(key) is not None
               for k in keys}
    return (getattr(module, "REQUIRED", {}), tuple(k for k in getattr(module, "PATHS", ()) if k not in ignored),
            tuple(k for k in getattr(module, "HUB_IDS", ()) if k not in ignored))


def _looks_like_hub_id(value: str) -> bool:
    return value.count("/") == 1 and not value.startswith((".", "/", "~")) and not Path(value).exists()


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE",
                                                                                     "TRANSFORMERS_OFFLINE"))


def check_profile(cfg: Profile) -> dict[str, Any]:
    """Check, before any work, that what ``cfg`` points to is there; raise :class:`ProfileCheckError` if not.

    Checked: the fields the chapter requires under this profile (``REQUIRED``), that the paths it names exist
    (``PATHS``; ``data_root`` must be a folder), that ``llm`` is ``"tiny"``, a local model folder (with a
    ``config.json``) or a Hub id (an error offline unless it is in the Hugging Face cache), and that the
    ``device`` exists (``"cuda"`` needs a visible CUDA GPU). Every problem is reported at once, each with what
    to do. ``device="cpu"`` also pins Accelerate to the CPU (``ACCELERATE_USE_CPU=1``) for this process.

    Returns a summary for the chapter's log: ``{"device": "cuda", "downloads": [...], "checked": [...]}``.
    """
    values = cfg.as_dict()
    required, paths, hub_ids = _chapter_rules(cfg.chapter, values)
    problems: list[str] = []
    checked: list[str] = []
    downloads: list[str] = []
    for key in required.get(cfg.name, ()):
        if values.get(key) is None:
            what = _schema.REQUIRED_HINTS.get(key, "the chapter needs it at this scale")
            problems.append(f"{key} is not set; it must name {what}: pass -p {key} <value> to papermill, "
                            f"or -p {key}=<value> to python -m rrg_lite.run")
    for key in paths:
        value = values.get(key)
        if value is None:
            continue
        path = Path(str(value)).expanduser()
        if not path.exists():
            hint = (" (convert a dataset with data_scripts/, then point data_root at its folder)" if key == "data_root"
                    else "")
            problems.append(f"{key}={value!r}: no such file or folder{hint}")
        elif key == "data_root" and not path.is_dir():
            problems.append(f"data_root={value!r} is a file; it must be the dataset's folder")
        else:
            checked.append(f"{key}={value}")
    for key in hub_ids:  # a local folder or a Hugging Face id
        value = values.get(key)
        if not isinstance(value, str) or value == "tiny":
            continue
        path = Path(value).expanduser()
        if path.exists():
            if path.is_dir() and key == "llm" and not (path / "config.json").exists():
                problems.append(f"llm={value!r} is a folder without config.json: save the model with save_pretrained()")
            else:
                checked.append(f"{key}={value}")
        elif not _looks_like_hub_id(value):
            problems.append(f"{key}={value!r}: no such file or folder, and not a Hugging Face id (owner/name)")
        elif _hub_cached(value):
            checked.append(f"{key}={value} (Hugging Face cache)")
        elif _offline():
            problems.append(f"{key}={value!r} is not in the Hugging Face cache and downloads are off "
                            f"(HF_HUB_OFFLINE): run `huggingface-cli download {value}` first, or pass a local folder")
        else:
            downloads.append(value)
    device = values.get("device")
    if device is not None:
        import torch

        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
                problems.append(f"device={device!r} but torch {torch.__version__} ({build}) sees no CUDA GPU: run on a "
                                "GPU machine, or pass -p device=cpu to run this profile on the CPU (slow at full scale)")
            elif ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
                problems.append(f"device={device!r} but only {torch.cuda.device_count()} GPU(s) are visible")
        resolved = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    else:
        resolved = None
    if resolved == "cpu" and values.get("precision") == "fp16":
        problems.append("precision='fp16' needs a GPU (Accelerate has no fp16 on the CPU): pass -p precision=bf16 "
                        "or -p precision=no")
    if problems:
        raise ProfileCheckError(cfg.chapter, cfg.name, problems)
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "1"  # Accelerate reads it when the first Accelerator is made
    return {"device": resolved, "downloads": downloads, "checked": checked}


def resolve_device(device: str | None = "auto"):
    """The ``torch.device`` a profile's ``device`` names: ``"auto"`` (or None) = the GPU if there is one."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
