"""Compatibility names for the collaborative-filtering baselines (moved to ``models``).

``cf.<name>`` is the object ``<name>`` of :mod:`complemjax.models.mf` (BPR-MF),
:mod:`complemjax.models.ease` (EASE) or :mod:`complemjax.models.popularity`, for every
public name of those modules; their docstrings are the documentation. New code should
import from :mod:`complemjax.models`.
"""

import importlib

# ``complemjax.models.popularity`` (the attribute) is the function of that name, so the
# modules are fetched by their full names
_OWNERS = tuple(
    importlib.import_module(f"complemjax.models.{m}") for m in ("mf", "ease", "popularity")
)

__all__ = sorted({name for m in _OWNERS for name in m.__all__})
globals().update({name: getattr(m, name) for m in _OWNERS for name in m.__all__})
