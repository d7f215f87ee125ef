"""Run a chapter outside Jupyter: ``python -m rrg_lite.run <chapter> --profile full -p key=value …``.

The chapters with training run the same package functions their notebook calls — the training and evaluation
pipeline, without the plots — so that a long run needs no kernel, can resume from its checkpoints, and can use
several GPUs::

    python -m rrg_lite.run --help                                        # the chapters
    python -m rrg_lite.run mu2 --help                                    # one chapter's parameters (cpu / full)
    python -m rrg_lite.run mu2 --profile full -p data_root=/data/AMOS-MM -p encoder_weights=/models/M3D-CLIP \\
        --output-dir runs/mu2                                            # one GPU
    accelerate launch --num_processes 4 -m rrg_lite.run mu2 --profile full …           # DDP on 4 GPUs
    accelerate launch --config_file rrg_lite/configs/accelerate/<config>.yaml -m rrg_lite.run …  # DeepSpeed / FSDP
    python -m rrg_lite.run preference_optimisation --profile full -p sft_checkpoint=runs/mu2/sft …
    python -m rrg_lite.run mu2 --profile full --check                    # only check data, weights, device
    python -m rrg_lite.run images --profile full -p nifti_path=/data/ct.nii.gz       # a chapter without training:
                                                                         # its notebook, executed with papermill

``-p key=value`` is a profile parameter (``rrg_lite/profiles/<profile>.py``); the value is read as JSON when it
parses (``3``, ``1e-4``, ``[0, 1]``, ``true``, ``null``), else as a string. ``--output-dir D`` is
``-p output_dir=D``; ``--resume`` continues every training run from its latest checkpoint there (after a kill, or
to add steps). Every run first checks its profile (:func:`rrg_lite.profiles.check_profile`) and stops with
a message naming what is missing. Results go to ``<output_dir>/results.json``; the summary is printed as JSON.
The chapter → function map is by name (strings below), so the shared rooms never import ``rrg_lite.systems``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["CHAPTERS", "Chapter", "parse_overrides", "load_chapter_profile", "run_chapter", "main"]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@dataclass(frozen=True)
class Chapter:
    notebook: str                 # notebooks/<notebook>.ipynb
    profile: str                  # rrg_lite/profiles/<profile>.py
    runner: str | None            # "module:function" taking (cfg, progress=...) -> results dict; None = the notebook
    summary: str

    @property
    def path(self) -> Path:
        return NOTEBOOKS / f"{self.notebook}.ipynb"


CHAPTERS: dict[str, Chapter] = {
    "images": Chapter("01_radiology_images", "images", None, "radiology images in Python (NIfTI, DICOM, windows)"),
    "synthetic_world": Chapter("02_synthetic_world", "world", None, "the synthetic radiology world; builds datasets"),
    "measuring_a_report": Chapter("03_measuring_a_report", "metrics", None,
                                  "NLG and clinical metrics, GREEN, significance"),
    "teaching_an_encoder_to_see": Chapter("04_teaching_an_encoder_to_see", "encoders", None,
                                          "pre-training the vision encoders (supervised, CLIP)"),
    "mllm_from_parts": Chapter("05_mllm_from_parts", "mllm", "rrg_lite.systems.llava_ct.pipeline:run",
                               "LLaVA recipe on chest CT: encoder, projector, LM; align then LoRA; CE-F1"),
    "mu2": Chapter("06_mu2", "mu2", "rrg_lite.systems.mu2.pipeline:run_tokenizer_ablation",
                   "μ² tokenizer ablation (Table 2); saves the μ² SFT model to <output_dir>/sft"),
    "preference_optimisation": Chapter("07_preference_optimisation", "dpo", "rrg_lite.systems.mu2.pipeline:run_preference",
                                       "SFT → DPO on GREEN-ranked pairs (reads sft_checkpoint)"),
    "reports_to_reasoning": Chapter("08_reports_to_reasoning", "reasoning", None,
                                    "LLM pipelines: μ² reasoning data, PET/CT split, rewriting "
                                    "(pipeline alone: python -m rrg_lite.prompting.reasoning)"),
}


def _find(name: str) -> tuple[str, Chapter]:
    """A chapter by name, notebook name or number (``mu2``, ``06_mu2``, ``06``, ``6``)."""
    for key, ch in CHAPTERS.items():
        number = ch.notebook.split("_")[0]
        if name in (key, ch.notebook, number, number.lstrip("0")):
            return key, ch
    raise SystemExit(f"unknown chapter {name!r}; chapters: {', '.join(CHAPTERS)} (python -m rrg_lite.run --help)")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"None": None, "True": True, "False": False}.get(text, text)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["steps=3", "seeds=[0, 1]", "llm=meta-llama/Llama-3.2-1B"]`` -> ``{"steps": 3, "seeds": [0, 1], ...}``."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"-p expects key=value, got {pair!r} (e.g. -p steps=100)")
        out[key.strip()] = _value(text)
    return out


def load_chapter_profile(chapter: str, profile: str = "cpu", overrides: dict | None = None,
                         output_dir: str | None = None):
    """The chapter's profile with overrides applied (``output_dir`` wins over ``overrides["output_dir"]``)."""
    from rrg_lite.profiles import load_profile

    _, ch = _find(chapter)
    overrides = dict(overrides or {})
    if output_dir is not None:
        overrides["output_dir"] = output_dir
    return load_profile(ch.profile, profile, **overrides)


def _call(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def _summary(results: Any) -> Any:
    if isinstance(results, dict):
        return {k: v for k, v in results.items() if k not in ("config", "rows")}
    return results


#: Per-cell limit for notebook runs (seconds): a lost kernel message then costs this, never forever.
CELL_TIMEOUT = 6 * 3600


def run_notebook(chapter: str, profile: str, overrides: dict, output_dir: str | None,
                 cell_timeout: int = CELL_TIMEOUT) -> dict:
    """Execute the chapter's notebook with papermill (parameters checked against its ``parameters`` cell)."""
    import papermill as pm

    key, ch = _find(chapter)
    if not ch.path.exists():
        raise SystemExit(f"chapter {key!r}: {ch.path} does not exist (run from a clone of the repository)")
    declared = set(pm.inspect_notebook(str(ch.path)))
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise SystemExit(f"notebook {ch.path.name} has no parameter(s) {', '.join(unknown)}; "
                         f"its parameters: {', '.join(sorted(declared))}")
    out_dir = Path(output_dir or overrides.get("output_dir") or Path("runs") / key)
    params = {"profile": profile, **overrides}
    if "output_dir" in declared and output_dir is not None:
        params["output_dir"] = output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / ch.path.name
    pm.execute_notebook(str(ch.path), str(out), parameters=params, cwd=str(ch.path.parent), kernel_name="python3",
                        progress_bar=False, execution_timeout=cell_timeout)
    return {"chapter": key, "profile": profile, "notebook": str(out)}


def _check_for_notebook(ch: Chapter, profile: str, overrides: dict, output_dir: str | None) -> dict:
    """check_profile before a notebook run, so that it fails before its kernel starts (profile keys only)."""
    from rrg_lite.profiles import _chapter_profiles, available_chapters, check_profile, load_profile

    if ch.profile not in available_chapters():
        return {"note": f"no profile module rrg_lite.profiles.{ch.profile}"}
    known = set(_chapter_profiles(ch.profile).get(profile, {}))
    over = {k: v for k, v in overrides.items() if k in known}
    if output_dir is not None and "output_dir" in known:
        over["output_dir"] = output_dir
    return check_profile(load_profile(ch.profile, profile, **over))


def run_chapter(chapter: str, profile: str = "cpu", overrides: dict | None = None, output_dir: str | None = None,
                notebook: bool = False, check_only: bool = False, progress: bool = False) -> dict:
    """Load and check the profile, then run the chapter's pipeline (or its notebook); returns the results dict."""
    from rrg_lite.profiles import check_profile

    key, ch = _find(chapter)
    overrides = dict(overrides or {})
    if ch.runner is None or notebook:
        check = _check_for_notebook(ch, profile, overrides, output_dir)
        if check_only:
            return {"chapter": key, "profile": profile, "check": check}
        return run_notebook(key, profile, overrides, output_dir)
    cfg = load_chapter_profile(key, profile, overrides, output_dir)
    check = check_profile(cfg)
    if check_only:
        return {"chapter": key, "profile": profile, "check": check, "config": cfg.as_dict()}
    results = _call(ch.runner)(cfg, progress=progress)
    if isinstance(results, dict):
        results.setdefault("check", check)
    return results


def _chapter_epilog(ch: Chapter) -> str:
    from rrg_lite.profiles import _chapter_profiles, available_chapters

    how = ("runs: " + ch.runner.replace(":", ".")) if ch.runner else f"runs: notebooks/{ch.notebook}.ipynb (papermill)"
    if ch.profile not in available_chapters():
        return how
    rows = _chapter_profiles(ch.profile)
    names = sorted(rows)
    keys = sorted({k for r in rows.values() for k in r})
    width = max(len(k) for k in keys)
    lines = [f"parameters (rrg_lite/profiles/{ch.profile}.py; values for {' | '.join(names)}):"]
    for k in keys:
        vals = " | ".join(json.dumps(rows[n].get(k), ensure_ascii=False, default=str) for n in names)
        lines.append(f"  {k:<{width}}  {vals}")
    return "\n".join([how, *lines])


def _parser() -> argparse.ArgumentParser:
    lines = [f"  {k:<28} {c.notebook:<32} {c.summary}" + ("" if c.runner else "  [notebook]")
             for k, c in CHAPTERS.items()]
    parser = argparse.ArgumentParser(
        prog="python -m rrg_lite.run", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a chapter of rrg-lite: its training/evaluation pipeline (chapters with training) or its "
                    "notebook (papermill). Also under `accelerate launch -m rrg_lite.run …`.",
        epilog="chapters (name, notebook; a number like 06 works too):\n" + "\n".join(lines)
               + "\n\nexample: python -m rrg_lite.run mu2 --profile full -p data_root=/data/AMOS-MM "
                 "-p encoder_weights=/models/M3D-CLIP --output-dir runs/mu2")
    sub = parser.add_subparsers(dest="chapter", metavar="CHAPTER")
    for key, ch in CHAPTERS.items():
        number = ch.notebook.split("_")[0]
        p = sub.add_parser(key, aliases=[ch.notebook, number], help=ch.summary, formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=ch.summary, epilog=_chapter_epilog(ch))
        p.add_argument("--profile", default="cpu", help="profile name (default: cpu; full = real data, GPU)")
        p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                       help="override a profile parameter (repeatable); the value is JSON if it parses")
        p.add_argument("--output-dir", default=None, help="where checkpoints and results go (= -p output_dir=...)")
        p.add_argument("--resume", action="store_true",
                       help="continue every training run from its latest checkpoint in the output dir (= -p resume=true)")
        p.add_argument("--check", action="store_true", help="only load and check the profile (data, weights, device)")
        p.add_argument("--notebook", action="store_true", help="execute the chapter's notebook with papermill instead")
        p.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rrg_lite.profiles import ProfileError

    parser = _parser()
    args = parser.parse_args(argv)
    if args.chapter is None:
        parser.print_help()
        return 0
    from rrg_lite.train.checkpoint import CheckpointError

    overrides = parse_overrides(args.param)
    if args.resume:
        overrides["resume"] = True
    try:
        results = run_chapter(args.chapter, args.profile, overrides, args.output_dir,
                              notebook=args.notebook, check_only=args.check, progress=args.progress)
    except ProfileError as err:
        print(f"rrg_lite.run {args.chapter}: {err}", file=sys.stderr)
        return 2
    except CheckpointError as err:
        print(f"rrg_lite.run {args.chapter}: {err}\n(rerun with --resume to continue the runs in the output dir, or "
              "pass another --output-dir)", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(_summary(results), indent=1, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
