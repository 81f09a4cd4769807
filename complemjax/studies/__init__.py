"""Studies run by ``complemjax reproduce``.

Each follows the protocol of :mod:`complemjax.studies.base`: ``NAME``, a frozen ``StudyConfig`` with
``.full()``, ``run(out_dir, *, config, seed, progress, resume)`` (compute, write CSVs) and
``render(out_dir) -> str`` (figures and a markdown section from the saved CSVs, so a report can be
rebuilt without recomputing). :func:`verdict_section` gathers the pre-registered claims C1–C5 of the
real-data studies into the table that opens the report.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

# Order of the report's sections; title shown in report.md.
STUDIES: dict[str, str] = {
    "synthetic_alignment": "Synthetic alignment probes",
    "synthetic_complementarity": "Synthetic complementarity of two rankers",
    "movielens_complementarity": "MovieLens: semantic and collaborative recommenders",
    "fusion": "Fusion against alignment-centric integration (MovieLens)",
}

__all__ = ["STUDIES", "load", "verdict_section"]

# Studies that measure the pre-registered claims (each has ``claims(out_dir)``).
_CLAIM_STUDIES = ("movielens_complementarity", "fusion")


def load(name: str) -> ModuleType:
    """Import the study module ``complemjax.studies.<name>``."""
    if name not in STUDIES:
        raise ValueError(f"unknown study `{name}`; known: {sorted(STUDIES)}")
    return importlib.import_module(f"complemjax.studies.{name}")


def verdict_section(out_dir: str | Path) -> str | None:
    """The verdict table (C1–C5) from the saved results of the real-data studies.

    Holm-adjusted over every claim × variant, with a first line naming refuted claims; None when
    no such study has results in ``out_dir``.
    """
    from complemjax.studies import _report

    out_dir = Path(out_dir)
    results = []
    for name in _CLAIM_STUDIES:
        if (out_dir / f"{name}.meta.json").is_file():
            results += load(name).claims(out_dir)
    if not results:
        return None
    table, rows = _report.verdicts(results)
    return f"{_report.headline(rows)}\n\n{table}"
