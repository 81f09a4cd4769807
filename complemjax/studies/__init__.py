"""Studies run by ``complemjax reproduce``: each module has ``run(out_dir, full=...)``
(compute, write CSVs) and ``render(out_dir) -> str`` (figures and a markdown section from
the saved CSVs, so a report can be rebuilt without recomputing)."""

from __future__ import annotations

import importlib
from types import ModuleType

# Order of the report's sections; title shown in report.md.
STUDIES: dict[str, str] = {
    "synthetic_alignment": "Synthetic alignment probes",
    "synthetic_complementarity": "Synthetic complementarity of two rankers",
    "movielens_complementarity": "MovieLens: semantic and collaborative recommenders",
    "fusion": "Fusion against alignment-centric integration (MovieLens)",
}

__all__ = ["STUDIES", "load"]


def load(name: str) -> ModuleType:
    """Import the study module ``complemjax.studies.<name>``."""
    if name not in STUDIES:
        raise ValueError(f"unknown study `{name}`; known: {sorted(STUDIES)}")
    return importlib.import_module(f"complemjax.studies.{name}")
