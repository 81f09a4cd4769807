"""The ``complemjax`` command: reproduce the studies, rebuild reports, diagnose two views."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

__all__ = ["main"]

INTRO = """All numbers below were computed by `complemjax reproduce` in this run; cells are
means over seeds (or bootstrap resamples, where stated) with 95% intervals. Each section
states what the code finds, including where the seed paper's claims do not reproduce."""


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from complemjax import report, studies

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(studies.STUDIES)
    for name in names:
        ckpt = out / "checkpoints" / name
        if ckpt.exists() and not args.resume:
            # A fresh reproduction: drop this study's chunk files from an earlier run
            # (they may come from other code or settings). --resume keeps them.
            shutil.rmtree(ckpt)
        t0 = time.perf_counter()
        module = studies.load(name)
        config = module.StudyConfig.full() if args.full else module.StudyConfig()
        print(f"[complemjax] running {name} ...", flush=True)
        for line in getattr(module, "plan", lambda c: [])(config):
            print(f"[complemjax]   plan: {line}", flush=True)
        module.run(out, config=config, seed=args.seed, progress=not args.quiet, resume=args.resume)
        print(f"[complemjax] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    path = _render(out, report)
    print(f"[complemjax] report written to {path}")
    return 0


def _render(out: Path, report_mod) -> Path:
    from complemjax import studies

    sections = []
    for name, title in studies.STUDIES.items():
        if (out / f"{name}.csv").exists():
            sections.append((title, studies.load(name).render(out)))
    if not sections:
        raise SystemExit(f"no study results found in {out}; run `complemjax reproduce` first")
    verdicts = studies.verdict_section(out)
    intro = INTRO if verdicts is None else f"## Verdicts\n\n{verdicts}\n{INTRO}"
    return report_mod.assemble_report(out, sections, intro=intro)


def _cmd_report(args: argparse.Namespace) -> int:
    from complemjax import report

    out = Path(args.results_dir)
    if not out.is_dir():
        raise SystemExit(f"RESULTS_DIR {out} does not exist")
    print(f"[complemjax] report written to {_render(out, report)}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from complemjax import config

    config.run_config(
        args.config, resume=not args.no_resume, progress=not args.quiet, out_dir=args.out
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="complemjax",
        description="Study how semantic (LLM) and collaborative views of the same items "
        "relate, and how to combine them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "reproduce",
        help="run every study and write results/ (report.md, CSV tables, PNG figures)",
        description="Run the studies (synthetic and MovieLens) and write a markdown report, "
        "CSV tables and PNG figures into --out.",
    )
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--full", action="store_true", help="run the larger grids (slow)")
    p.add_argument("--only", nargs="*", help="run only these studies")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--seed", type=int, default=0, help="root seed of every study (default 0)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoints instead of starting afresh",
    )
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "report",
        help="rebuild report.md and figures from saved results without recomputing",
        description="Rebuild RESULTS_DIR/report.md and its figures from the CSVs a previous "
        "run wrote; nothing is recomputed.",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "sweep",
        help="run a study described by a TOML/YAML config (resumes after interruption)",
        description="Run the study a config file describes (see complemjax/configs/ for the "
        "shipped examples). Finished chunks are checkpointed; rerunning the same command "
        "after an interruption continues where it stopped.",
    )
    p.add_argument("config", metavar="CONFIG", help="path to a .toml or .yaml study config")
    p.add_argument("--out", default=None, help="override the config's out_dir")
    p.add_argument(
        "--no-resume", action="store_true", help="refuse to continue an existing checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    from complemjax import diagnose

    diagnose.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
