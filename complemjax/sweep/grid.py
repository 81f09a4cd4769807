"""Grids of knobs: expansion, knob checks, output flattening, canonical JSON, fingerprints."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "check_grid_values",
    "check_knob_names",
    "code_fingerprint",
    "config_fingerprint",
    "dumps",
    "expand_grid",
    "flatten_outputs",
    "jsonable",
    "short",
]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of a mapping of lists, as a list of dicts (first key slowest)."""
    if not isinstance(grid, Mapping):
        raise ValueError(f"`grid` must be a mapping of name -> list of values, got {type(grid)}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid entry `{name}` must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid entry `{name}` is empty: a grid needs at least one value")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]


def check_knob_names(grid: Mapping[str, Any], static: Mapping[str, Any]) -> None:
    """Knob names are identifiers, distinct, and do not shadow ``key`` or ``seed``.

    Raises:
        ValueError: naming ``grid`` or ``static`` and the offending knob.
    """
    for which, names in (("grid", list(grid)), ("static", list(static))):
        for name in names:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"`{which}` names must be identifiers, got {name!r}")
            if name in ("key", "seed"):
                raise ValueError(
                    f"`{which}` entry `{name}` clashes with the PRNG key / seed column; rename it"
                )
    both = sorted(set(grid) & set(static))
    if both:
        raise ValueError(f"`grid` and `static` both name {both}; each knob goes in one of them")


def check_grid_values(grid: Mapping[str, Sequence[Any]]) -> None:
    """Dynamic knob values are numbers (each is passed to ``fn`` as a float32 scalar).

    Raises:
        ValueError: naming the ``grid`` entry that holds a non-number (or a bool).
    """
    for name, values in grid.items():
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                raise ValueError(
                    f"`grid` entry `{name}` must hold numbers (each is passed to `fn` as a "
                    f"float32 scalar), got {v!r} ({type(v).__name__}); knobs that are not "
                    f"numbers belong in `static`"
                )


def flatten_outputs(out: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """Turn ``{name: [n, ...]}`` into flat columns (``name`` or ``name_i_j``)."""
    cols: dict[str, np.ndarray] = {}
    for name, value in out.items():
        arr = np.asarray(value)
        if arr.ndim == 1:
            cols[name] = arr
        else:
            flat = arr.reshape(n, -1)
            for j, idx in enumerate(np.ndindex(*arr.shape[1:])):
                cols[name + "_" + "_".join(map(str, idx))] = flat[:, j]
    return cols


def short(s: str, n: int = 200) -> str:
    """``s`` cut to ``n`` characters (with ``...``) for error messages."""
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------------------------------
# Fingerprints and JSON
# ---------------------------------------------------------------------------------------


def jsonable(x: Any) -> Any:
    """A JSON-serialisable, canonical form of configs, grids and static values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        out = {"__class__": type(x).__qualname__}
        for f in dataclasses.fields(x):
            out[f.name] = jsonable(getattr(x, f.name))
        return out
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def dumps(x: Any) -> str:
    """Compact canonical JSON of :func:`jsonable` ``(x)``."""
    return json.dumps(jsonable(x), separators=(",", ":"))


def config_fingerprint(config: Any) -> str:
    """SHA-256 of a canonical JSON form of ``config`` (dataclasses, mappings, sequences).

    Pass the study's configuration (everything besides the grid, seeds and key that
    determines the results) as ``run_grid(..., fingerprint=config_fingerprint(cfg))`` so a
    resumed sweep refuses a results folder written under another configuration.

    Args:
        config: a frozen dataclass (nested dataclasses allowed), mapping, sequence or scalar.

    Returns:
        A 64-character hexadecimal string.

    Example:
        >>> config_fingerprint({"n_train": 1000}) == config_fingerprint({"n_train": 1000})
        True
    """
    return hashlib.sha256(dumps(config).encode()).hexdigest()


def code_fingerprint(*modules: Any) -> str:
    """SHA-256 of the source files of ``modules`` (to invalidate checkpoints on code edits).

    A checkpoint folder can only tell that the *configuration* is the same; if the code
    that computes the results changes, combine this into the fingerprint, e.g.
    ``config_fingerprint({"config": cfg, "code": code_fingerprint(study, probes)})``.

    A plain module contributes its name and the bytes of its file. A package (a module
    with ``__path__``, such as :mod:`complemjax.sweep`) has no single source file: it
    contributes its name and, for every ``*.py`` file under its folder (subpackages
    included) in sorted order of the path relative to that folder, the relative path and
    the file's bytes.

    Args:
        *modules: imported modules or packages (or objects with a ``__file__``).

    Returns:
        A 64-character hexadecimal string.

    Raises:
        ValueError: if an entry of ``modules`` has no source file.
    """
    h = hashlib.sha256()
    for module in modules:
        path = getattr(module, "__file__", None)
        if path is None:
            raise ValueError(f"`modules` entry {module!r} has no source file")
        h.update(getattr(module, "__name__", str(path)).encode())
        if getattr(module, "__path__", None) is None:
            h.update(Path(path).read_bytes())
            continue
        root = Path(path).parent
        files = sorted((f.relative_to(root).as_posix(), f) for f in root.rglob("*.py"))
        for rel, f in files:
            h.update(rel.encode())
            h.update(f.read_bytes())
    return h.hexdigest()
