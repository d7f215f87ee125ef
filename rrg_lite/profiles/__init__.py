"""Named parameter sets shared by the notebooks and the scripts.

Every chapter has one module here, ``rrg_lite/profiles/<chapter>.py``, holding a dict ``PROFILES`` that maps a
profile name (``"cpu"``, ``"full"``, ...) to the chapter's parameters. A notebook's ``parameters`` cell sets
``profile = "cpu"`` plus overrides that default to ``None`` ("let the profile decide"); papermill replaces them::

    cfg = load_profile("mllm", profile, llm=llm, data_root=data_root)
    cfg.llm, cfg.steps            # attribute access
    cfg.as_dict()                 # everything, for logging

Unknown chapters, unknown profiles, unknown parameter names and values of the wrong type fail with a message
that says what is allowed, because a typo in a papermill ``-p`` flag should never silently run the CPU demo.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import MappingProxyType
from typing import Any, Mapping

__all__ = ["Profile", "ProfileError", "load_profile", "available_chapters", "available_profiles"]


class ProfileError(ValueError):
    """A profile, a parameter name or a parameter value that the chapter does not accept."""


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
            raise ProfileError(
                f"chapter {chapter!r} has no parameter {key!r}; its parameters are: {', '.join(sorted(values))}"
            )
        if value is not None:
            values[key] = _check_type(chapter, key, values[key], value)
    return Profile(chapter, name, values)
