"""Study configs: load and validate a TOML or YAML file describing one study run.

A config names a study of :mod:`complemjax.studies`, where its results go, the root seed,
and overrides of the study's ``StudyConfig`` fields (a frozen dataclass)::

    # synthetic_alignment.toml
    study = "synthetic_alignment"     # required: a name in complemjax.studies.STUDIES
    out_dir = "results/alignment"     # default "results"; relative to the current folder
    seed = 0                          # default 0: root PRNG seed of the sweep
    full = false                      # default false: start from StudyConfig.full()

    [config]                          # overrides of StudyConfig fields (all optional)
    shared_fractions = [0.2, 0.5, 0.8]
    n_seeds = 4

    [config.views]                    # nested dataclass fields are nested tables
    dim_sem = 64

YAML files (``.yaml``/``.yml``) have the same keys. Every key is checked against the
dataclass field types before anything runs: unknown keys, wrong types (an int where a
float is expected is accepted; a float where an int is expected is not), and empty lists
(empty grids) raise a :class:`ValueError` naming the key, e.g. ``config.n_seeds``. Lists
become tuples.

Example:
    >>> spec = load_config("complemjax/configs/synthetic_alignment.toml")
    >>> spec.study, type(spec.config).__name__
    ('synthetic_alignment', 'StudyConfig')
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["StudySpec", "load_config", "run_config"]

_TOP_LEVEL = ("study", "out_dir", "seed", "full", "config")


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A validated study config.

    Attributes:
        study: name of the study module in :mod:`complemjax.studies`.
        out_dir: results folder (relative paths are relative to the current folder).
        seed: root PRNG seed.
        full: whether the overrides apply to ``StudyConfig.full()`` instead of the default.
        config: the study's ``StudyConfig`` with the overrides applied.
        source: the file it was read from.
    """

    study: str
    out_dir: Path
    seed: int
    full: bool
    config: Any
    source: Path | None = None


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"`path` {path} is not a file")
    if suffix == ".toml":
        try:
            with path.open("rb") as fh:
                return tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"`path` {path} is not valid TOML: {err}") from err
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            with path.open() as fh:
                return yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ValueError(f"`path` {path} is not valid YAML: {err}") from err
    raise ValueError(f"`path` must end in .toml, .yaml or .yml, got {path.name!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; lists become tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ValueError:
                continue
        raise ValueError(f"`{key}` must be {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"`{key}` must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple or tp is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"`{key}` must be a list, got {value!r} ({type(value).__name__})")
        if len(value) == 0:
            raise ValueError(f"`{key}` is empty: a grid needs at least one value")
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"`{key}` must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"`{key}` must be a table of {tp.__name__} fields, got {value!r} "
                f"({type(value).__name__})"
            )
        return _fields(value, tp, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"`{key}` must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"`{key}` must be an integer, got {value!r} ({type(value).__name__})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"`{key}` must be a number, got {value!r} ({type(value).__name__})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"`{key}` must be a string, got {value!r} ({type(value).__name__})")
        return value
    raise ValueError(f"`{key}` has a field type ({_type_name(tp)}) that configs cannot set")


def _fields(table: Mapping[str, Any], cls: type, key: str) -> dict[str, Any]:
    """Validated ``{field: value}`` overrides of dataclass ``cls`` (nested -> dicts)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name not in names:
            raise ValueError(f"unknown key `{key}.{name}`; {cls.__name__} fields are {names}")
        out[name] = _coerce(value, hints[name], f"{key}.{name}")
    return out


def _apply(base: Any, overrides: Mapping[str, Any]) -> Any:
    """``dataclasses.replace`` that descends into nested dataclass fields."""
    changes = {}
    for name, value in overrides.items():
        current = getattr(base, name)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            changes[name] = _apply(current, value)
        else:
            changes[name] = value
    return dataclasses.replace(base, **changes)


#: Value ranges by field name, checked on every loaded config (before any work), so that
#: e.g. ``densities = [2.0]`` or ``n_items = -5`` is refused naming ``config.<field>``.
#: Rules: (predicate on the field name, lower bound, lower open, upper bound, what).
_RANGES: tuple[tuple[Callable[[str], bool], float, bool, float, str], ...] = (
    (lambda n: n.startswith("n_") or n.endswith(("_steps", "_epochs", "_size", "_dim"))
     or n.startswith("dim_") or n in ("ranks", "widths", "max_interactions"),
     1, False, math.inf, ">= 1"),
    (lambda n: n in ("densities", "density"), 0.0, True, 1.0, "in (0, 1]"),
    (lambda n: n.endswith(("_fraction", "_fractions", "_frac", "reliance", "reliances"))
     or n.startswith("shared_fraction"), 0.0, False, 1.0, "in [0, 1]"),
    (lambda n: n.endswith(("learning_rate", "learning_rates")), 0.0, True, math.inf, "> 0"),
    (lambda n: n in ("noise", "nonlinearity", "nonlinearities", "popularity_skew")
     or n.endswith("_weights"), 0.0, False, math.inf, ">= 0"),
)  # fmt: skip


def check_domain(config: Any, key: str = "config") -> None:
    """Refuse out-of-range values of a study config, naming ``config.<field>``.

    Every number must be finite; fields are also checked by name (see ``_RANGES``): counts
    (``n_*``, ``*_steps``, ``*_epochs``, ``*_size``, dims, ranks, widths) are ``>= 1``,
    ``densities`` lie in ``(0, 1]``, fractions and reliances in ``[0, 1]``, learning rates
    are ``> 0`` and noise / nonlinearity / skew / weights ``>= 0``. Nested dataclasses
    (e.g. ``config.views``) are checked too.

    Raises:
        ValueError: the first offending field, with its value.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = f"{key}.{f.name}"
        if dataclasses.is_dataclass(value):
            check_domain(value, name)
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        flat = []
        for v in values:
            flat.extend(v if isinstance(v, (tuple, list)) else (v,))
        nums = [v for v in flat if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for v in nums:
            if not math.isfinite(v):
                raise ValueError(f"`{name}` must be finite, got {value!r}")
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], (tuple, list)):
            continue  # (label, number) pairs such as variants: only finiteness
        for match, lo, lo_open, hi, what in _RANGES:
            if match(f.name):
                for v in nums:
                    if v < lo or (lo_open and v == lo) or v > hi:
                        raise ValueError(f"`{name}` must be {what}, got {value!r}")
                break


def load_config(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study config (TOML or YAML); nothing is computed.

    Args:
        path: a ``.toml``, ``.yaml`` or ``.yml`` file (see the module docstring).

    Returns:
        A :class:`StudySpec` whose ``config`` is the study's ``StudyConfig`` with the
        overrides applied.

    Raises:
        ValueError: unreadable file, unknown study or key, wrong type, empty grid; the
            message names the key (``study``, ``config.n_seeds``, ...).
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"`path` {path} must hold a table of keys, got {type(data).__name__}")
    for name in data:
        if name not in _TOP_LEVEL:
            raise ValueError(f"unknown key `{name}` in {path}; allowed: {list(_TOP_LEVEL)}")
    if "study" not in data:
        raise ValueError(f"`study` is required in {path} (a study name)")
    study = _coerce(data["study"], str, "study")
    out_dir = Path(_coerce(data.get("out_dir", "results"), str, "out_dir"))
    seed = _coerce(data.get("seed", 0), int, "seed")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}")
    full = _coerce(data.get("full", False), bool, "full")
    table = data.get("config", {})
    if table is None:
        table = {}

    from complemjax import studies

    module = studies.load(study)  # ValueError naming `study` if unknown
    cls = getattr(module, "StudyConfig", None)
    if cls is None or not dataclasses.is_dataclass(cls):
        raise ValueError(f"`study` {study} has no StudyConfig dataclass to configure")
    if not isinstance(table, Mapping):
        raise ValueError(f"`config` must be a table of StudyConfig fields, got {table!r}")
    overrides = _fields(table, cls, "config")
    base = cls.full() if full else cls()
    try:
        config = _apply(base, overrides)
    except ValueError as err:
        raise ValueError(f"`config` of {path}: {err}") from err
    check_domain(config, "config")
    return StudySpec(study=study, out_dir=out_dir, seed=seed, full=full, config=config, source=path)


def run_config(
    path: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    out_dir: str | os.PathLike | None = None,
) -> Any:
    """Run the study a config file describes (``complemjax sweep CONFIG``).

    Loads and validates the file with :func:`load_config`, then calls
    ``complemjax.studies.<study>.run(out_dir, config=..., seed=..., progress=...)``,
    adding ``resume=resume`` when the study's ``run`` accepts it (studies that checkpoint
    their sweeps resume a killed run from their chunk files).

    Args:
        path: the config file.
        resume: continue an interrupted run from its checkpoint; if False, a results folder
            that already holds finished chunks raises instead of being overwritten.
        progress: show the progress bar (configurations done and time left).
        out_dir: override the config's ``out_dir``.

    Returns:
        Whatever the study's ``run`` returns (its long results table).
    """
    from complemjax import studies

    spec = load_config(path)
    module = studies.load(spec.study)
    kwargs: dict[str, Any] = {"config": spec.config, "seed": spec.seed, "progress": progress}
    if "resume" in inspect.signature(module.run).parameters:
        kwargs["resume"] = resume
    target = Path(out_dir) if out_dir is not None else spec.out_dir
    return module.run(target, **kwargs)
