"""The ``complemjax`` command: reproduce the studies, rebuild reports, diagnose two views."""

from __future__ import annotations

import argparse
import json
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
            _refuse_if_locked(ckpt)
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


def _refuse_if_locked(folder: Path) -> None:
    """Never delete a checkpoint folder that a live run is writing (see sweep.LOCK)."""
    from complemjax import sweep

    for lock in folder.rglob(sweep.LOCK):
        holder = sweep.live_lock_holder(lock.parent)
        if holder is not None:
            raise ValueError(
                f"{lock.parent} is being written by {holder}; refusing to start afresh there "
                f"(wait for that run, or use another --out)"
            )


#: Columns that a study's summary sentences count over, so that must not hold NaN (a NaN
#: there made "the CF ranker is better in 0% of runs" out of 64%). Other NaN values are
#: only counted in a warning line (some metrics are undefined for some configurations).
_COMPLETE: dict[str, tuple[str, ...]] = {
    "synthetic_complementarity": (
        "K",
        "recall_sem",
        "recall_cf",
        "overlap",
        "oracle_merge_rel_gain",
    ),
}


def _render(out: Path, report_mod, *, allow_missing: bool = False) -> Path:
    import pandas as pd

    from complemjax import studies

    sections = []
    for name, title in studies.STUDIES.items():
        csv = out / f"{name}.csv"
        if not csv.exists():
            continue
        report_mod.check_results_table(
            csv, complete=_COMPLETE.get(name, ()), allow_missing=allow_missing
        )
        try:
            sections.append((title, studies.load(name).render(out)))
        except FileNotFoundError as e:
            raise ValueError(
                f"results of `{name}` in {out} are incomplete: {Path(e.filename).name} is "
                f"missing; rerun `complemjax reproduce --only {name} --out {out}`"
            ) from e
        except (KeyError, pd.errors.EmptyDataError, pd.errors.ParserError, json.JSONDecodeError,
                TypeError) as e:  # fmt: skip
            raise ValueError(
                f"results of `{name}` in {out} are broken or from another version "
                f"({type(e).__name__}: {e}); rerun `complemjax reproduce --only {name} "
                f"--out {out}`"
            ) from e
    if not sections:
        raise ValueError(f"no study results found in {out}; run `complemjax reproduce` first")
    verdicts = studies.verdict_section(out)
    intro = INTRO if verdicts is None else f"## Verdicts\n\n{verdicts}\n{INTRO}"
    return report_mod.assemble_report(out, sections, intro=intro)


def _cmd_report(args: argparse.Namespace) -> int:
    from complemjax import report

    out = Path(args.results_dir)
    if out.is_file():
        raise ValueError(
            f"RESULTS_DIR {out} is a file; pass the folder that `complemjax reproduce --out` "
            f"wrote (the one holding the study CSVs)"
        )
    if not out.is_dir():
        raise ValueError(f"RESULTS_DIR {out} does not exist")
    path = _render(out, report, allow_missing=args.allow_missing)
    print(f"[complemjax] report written to {path}")
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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
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
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="build the report even if a results table has missing (NaN) values; summaries "
        "then use the finite values only",
    )
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
    for p in sub.choices.values():  # `--debug` also after the subcommand
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")  # fmt: skip
    return parser


#: Exceptions that mean "the input was wrong", reported in one line (exit status 2).
#: Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
               PermissionError)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user error prints ``complemjax: error: ...`` and returns 2.

    Errors from bad input (:data:`USER_ERRORS`) print one line on stderr; ``--debug``
    re-raises them with the traceback. Other exceptions are bugs and propagate.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if getattr(args, "debug", False):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"{parser.prog}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
