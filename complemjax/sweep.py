"""Run grids of seeds × configurations as vmapped, jitted, sharded programs that resume.

A study is a pure function ``fn(key, **knobs) -> dict[str, Array]`` of a PRNG key and
scalar *dynamic* knobs (anything that does not change shapes). :func:`run_grid` builds
the Cartesian product of the knob values and the seeds, flattens it into one batch axis
(configuration-major, seed-minor) and evaluates ``jax.vmap(fn)`` over chunks of that
axis. *Static* knobs (those that fix shapes or control flow, such as an MLP width) are
handled by bucketing: one compiled program per static combination, listed in ``static``.

Seeds use common random numbers: the key of seed ``s`` is ``fold_in(key, s)`` for every
configuration, so differences between configurations are not confounded with
different draws of the world.

**Past one device.** Each chunk of the flat axis is sharded over a one-axis
:class:`jax.sharding.Mesh` named ``"batch"`` (all devices by default,
``NamedSharding(mesh, P("batch"))``); the chunk size is rounded up to a multiple of the
device count and the padding rows (copies of the last real row) are dropped afterwards.
The per-device program is a ``jax.shard_map`` of the vmapped function, so each device
runs exactly the single-device program on its own rows with no communication; results
equal the single-device run. In a multi-host run (:func:`init_distributed` first, then the
same script on every process), the mesh spans the devices of all processes, every
process feeds the rows of its own devices and the outputs are all-gathered, so every
process returns the full table; only process 0 writes files.

**Resume.** With ``checkpoint_dir`` the grid is recorded in ``manifest.json`` (grid,
static grid, seeds, root key, chunk sizes and the caller's ``fingerprint`` of everything
else that determines the results), each finished chunk is written atomically (temporary
file in the same folder, ``fsync``, ``os.replace``) and a rerun skips finished chunks;
the returned table is always assembled from the chunk files. A folder written by a
different grid, key or fingerprint raises a :class:`ValueError`; finished results are
never overwritten.

**Memory.** ``chunk_size="auto"`` compiles the per-device program on batches of 1 and 2
rows and reads XLA's ``memory_analysis()`` to model one configuration's device memory as
``base + rows × per_row`` with ``per_row = max(m2 - m1, m2 / 2)`` (conservative when
temporaries do not grow between 1 and 2 rows), then picks the largest multiple of the
device count that fits ``memory_fraction`` of the free memory of the device (see
:func:`device_free_bytes`). A configuration that cannot fit at all raises before any
chunk runs. Every compiled chunk program is also checked against the free memory
before it runs.

Example:
    >>> def fn(key, noise):
    ...     x = jax.random.normal(key, (100,))
    ...     return {"var": jnp.var(x * noise)}
    >>> df = run_grid(fn, key=jax.random.key(0), grid={"noise": [0.5, 1.0]}, n_seeds=3)
    >>> list(df.columns)
    ['noise', 'seed', 'var']
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from complemjax import _checks

__all__ = [
    "MemoryPlan",
    "code_fingerprint",
    "config_fingerprint",
    "device_free_bytes",
    "expand_grid",
    "init_distributed",
    "live_lock_holder",
    "plan_chunk_size",
    "run_grid",
]

MANIFEST = "manifest.json"
#: Lock file of the process writing a checkpoint folder (see :func:`run_grid`).
LOCK = "sweep.lock"
_FORMAT = "complemjax.sweep/2"
_log = logging.getLogger(__name__)
_CHUNK_RE = re.compile(r"^chunk-s(\d{4})-c(\d{6})\.npz$")
#: Free bytes assumed per device when neither ``device.memory_stats()`` nor the host's
#: available RAM can be read (e.g. CPU on a system without ``/proc/meminfo``).
FALLBACK_FREE_BYTES = 1 << 30
#: With ``checkpoint_dir`` and ``chunk_size="auto"``, each static bucket is split into at
#: least this many chunks (so an interruption loses at most about 1/8 of a bucket).
AUTO_MIN_CHUNKS_WITH_CHECKPOINT = 8


class MemoryPlan(NamedTuple):
    """Chunk size chosen for one static bucket and the estimate behind it.

    Attributes:
        chunk_size: rows (configurations × seeds) per compiled call, a multiple of the
            device count.
        bytes_base: estimated fixed device bytes of the per-device program.
        bytes_per_row: estimated device bytes per configuration (per row).
        free_bytes: free bytes per device used for the plan.
        source: ``"memory_analysis"``, or ``"unavailable"`` when the backend reports no
            memory analysis (then one row per device per call is used).
    """

    chunk_size: int
    bytes_base: int
    bytes_per_row: int
    free_bytes: int
    source: str


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


def _check_knob_names(grid: Mapping[str, Any], static: Mapping[str, Any]) -> None:
    """Knob names are identifiers, distinct, and do not shadow ``key`` or ``seed``."""
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


def _flatten_outputs(out: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
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


# ---------------------------------------------------------------------------------------
# Fingerprints and JSON
# ---------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    """A JSON-serialisable, canonical form of configs, grids and static values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        out = {"__class__": type(x).__qualname__}
        for f in dataclasses.fields(x):
            out[f.name] = _jsonable(getattr(x, f.name))
        return out
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def _dumps(x: Any) -> str:
    return json.dumps(_jsonable(x), separators=(",", ":"))


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
    return hashlib.sha256(_dumps(config).encode()).hexdigest()


def code_fingerprint(*modules: Any) -> str:
    """SHA-256 of the source files of ``modules`` (to invalidate checkpoints on code edits).

    A checkpoint folder can only tell that the *configuration* is the same; if the code
    that computes the results changes, combine this into the fingerprint, e.g.
    ``config_fingerprint({"config": cfg, "code": code_fingerprint(study, probes)})``.

    Args:
        *modules: imported modules (or objects with a ``__file__``).

    Returns:
        A 64-character hexadecimal string.
    """
    h = hashlib.sha256()
    for module in modules:
        path = getattr(module, "__file__", None)
        if path is None:
            raise ValueError(f"`modules` entry {module!r} has no source file")
        h.update(getattr(module, "__name__", str(path)).encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# Devices, processes and memory
# ---------------------------------------------------------------------------------------


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """Join a multi-host run (``jax.distributed.initialize``) and return ``(index, count)``.

    Call it once per process, before any other JAX call, then run the same
    :func:`run_grid` call on every process. The mesh spans the devices of all
    processes; each process feeds the rows of its own devices, outputs are all-gathered
    so every process returns the full table, and only process 0 writes the manifest and
    chunk files. With ``checkpoint_dir``, the folder must be on a filesystem shared by all
    processes (every process reads the manifest and the finished chunks).

    Launch recipe (N processes, e.g. one per host)::

        # on process i of N (same script and arguments everywhere):
        from complemjax import sweep
        sweep.init_distributed("host0.example:12355", num_processes=N, process_id=i)
        df = sweep.run_grid(fn, key=jax.random.key(0), grid=..., n_seeds=...,
                            checkpoint_dir="/shared/results/run1.chunks",
                            fingerprint=sweep.config_fingerprint(cfg))

    On SLURM, Open MPI, Cloud TPU pods and similar clusters ``init_distributed()`` with no
    arguments lets JAX detect the coordinator, process count and index itself. Already
    initialised runs are left as they are. On CPU, cross-process collectives use gloo.

    Args:
        coordinator_address: ``"host:port"`` of process 0 (None: auto-detect).
        num_processes: total number of processes (None: auto-detect).
        process_id: index of this process in ``[0, num_processes)`` (None: auto-detect).
        **kwargs: passed to :func:`jax.distributed.initialize` (e.g. ``local_device_ids``).

    Returns:
        ``(jax.process_index(), jax.process_count())``.
    """
    if num_processes is not None:
        num_processes = _checks.check_positive_int("num_processes", num_processes)
    if process_id is not None:
        _checks.check_positive_int(
            "process_id",
            process_id,
            minimum=0,
            maximum=None if num_processes is None else num_processes - 1,
        )
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            **kwargs,
        )
    return jax.process_index(), jax.process_count()


def _host_available_bytes() -> int | None:
    """Available host RAM: ``MemAvailable`` of /proc/meminfo, else ``sysconf``; or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def device_free_bytes(device: jax.Device) -> tuple[int, str]:
    """Free memory of one device and where the number comes from.

    Accelerators report ``bytes_limit - bytes_in_use`` via ``device.memory_stats()``. CPU
    devices report nothing; they share the host's RAM, so the host's available memory
    (``MemAvailable`` in ``/proc/meminfo``, else ``sysconf``) is divided by the number of
    local CPU devices. When neither is readable, :data:`FALLBACK_FREE_BYTES` (1 GiB).

    Args:
        device: a ``jax.Device``.

    Returns:
        ``(free_bytes, source)`` with source ``"memory_stats"``, ``"host_ram"`` or
        ``"fallback"``.
    """
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # backends without the query raise various errors
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), "memory_stats"
    host = _host_available_bytes()
    if host is not None:
        n_local = sum(1 for d in jax.local_devices() if d.platform == device.platform) or 1
        return host // n_local, "host_ram"
    return FALLBACK_FREE_BYTES, "fallback"


def _compiled_bytes(compiled: Any) -> int | None:
    """Device bytes of a compiled program (arguments + outputs + temporaries - aliases)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # not implemented on some backends
        return None
    if m is None:
        return None
    total = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )
    return int(total)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _fmt_bytes(b: float) -> str:
    return f"{b / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------


class _Key(NamedTuple):
    data: np.ndarray  # uint32 key data
    impl: str | None  # PRNG implementation of a typed key; None for a raw uint32 key


def _split_key(key: Any) -> _Key:
    if not isinstance(key, jax.Array):
        raise ValueError(f"`key` must be a PRNG key from jax.random.key, got {type(key)}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single key (shape ()), got shape {key.shape}")
        return _Key(np.asarray(jax.random.key_data(key)), str(jax.random.key_impl(key)))
    if key.dtype != jnp.uint32 or key.ndim != 1:
        raise ValueError(
            f"`key` must be a PRNG key (jax.random.key), got dtype {key.dtype}, shape {key.shape}"
        )
    return _Key(np.asarray(key), None)


def _root(key: _Key) -> jax.Array:
    data = jnp.asarray(key.data)
    return data if key.impl is None else jax.random.wrap_key_data(data, impl=key.impl)


def _row_fn(fn: Callable, key: _Key, srow: Mapping[str, Any]) -> Callable:
    """``rows(seeds [b], knobs {name: [b]}) -> {name: [b, ...]}`` for one static bucket."""

    def rows(seeds, knobs):
        root = _root(key)
        keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(seeds)
        return jax.vmap(lambda k, kn: _checked_call(fn, k, kn, srow))(keys, knobs)

    return rows


def _checked_call(fn: Callable, k: Any, knobs: Mapping[str, Any], srow: Mapping[str, Any]):
    """Call ``fn`` for one row and check (at trace time) that it returns a dict of arrays."""
    out = fn(k, **knobs, **srow)
    if not isinstance(out, Mapping) or not out:
        raise ValueError(
            f"`fn` must return a non-empty dict of name -> array, got {type(out).__name__}"
            + ("" if isinstance(out, Mapping) else f" ({_short(repr(out), 80)})")
        )
    bad = [k for k in out if not isinstance(k, str)]
    if bad:
        raise ValueError(f"`fn` must return a dict with string keys, got key {bad[0]!r}")
    return dict(out)


def _abstract(n: int, names: Sequence[str], sharding: Any = None):
    seeds = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=sharding)
    knobs = {name: jax.ShapeDtypeStruct((n,), jnp.float32, sharding=sharding) for name in names}
    return seeds, knobs


def plan_chunk_size(
    fn: Callable[..., Mapping[str, jax.Array]],
    *,
    key: jax.Array,
    knob_names: Sequence[str] = (),
    static: Mapping[str, Any] | None = None,
    n_devices: int = 1,
    max_rows: int | None = None,
    free_bytes: int | None = None,
    memory_fraction: float = 0.5,
) -> MemoryPlan:
    """Largest chunk (multiple of ``n_devices``) whose per-device memory fits the budget.

    Compiles ``vmap(fn)`` for one device on 1 and 2 rows; with ``m_b`` the bytes XLA's
    ``memory_analysis()`` reports for ``b`` rows,

        per_row = max(m2 - m1, m2 / 2),   base = max(m1 - per_row, 0),
        rows_per_device = floor((memory_fraction * free - base) / per_row),

    and ``chunk_size = n_devices * rows_per_device`` (at most ``max_rows`` rounded up).
    When the backend reports no memory analysis, one row per device is used.

    Args:
        fn: the study function ``fn(key, **knobs, **static)``.
        key: PRNG key (only its type matters here).
        knob_names: names of the dynamic (float32 scalar) knobs.
        static: the static knob values of this bucket.
        n_devices: devices the chunk is sharded over.
        max_rows: upper bound on the chunk (e.g. rows in the bucket).
        free_bytes: free bytes per device (default: the smallest over ``jax.devices()``
            as measured by :func:`device_free_bytes`).
        memory_fraction: share of the free memory a chunk may use, in ``(0, 1]``.

    Returns:
        A :class:`MemoryPlan`.

    Raises:
        ValueError: if a single configuration does not fit into ``free_bytes``.
    """
    _checks.check_in_range("memory_fraction", memory_fraction, 0.0, 1.0, lo_open=True)
    n_devices = _checks.check_positive_int("n_devices", n_devices)
    kd = _split_key(key)
    if free_bytes is None:
        free_bytes = min(device_free_bytes(d)[0] for d in jax.local_devices())
    rows = _row_fn(fn, kd, dict(static or {}))
    sizes = []
    for b in (1, 2):
        compiled = jax.jit(rows).lower(*_abstract(b, knob_names)).compile()
        sizes.append(_compiled_bytes(compiled))
    cap = None if max_rows is None else _round_up(max_rows, n_devices)
    if sizes[0] is None or sizes[1] is None:
        return MemoryPlan(n_devices, 0, 0, int(free_bytes), "unavailable")
    m1, m2 = sizes
    per_row = max(m2 - m1, math.ceil(m2 / 2), 1)
    base = max(m1 - per_row, 0)
    if base + per_row > free_bytes:
        raise ValueError(
            f"one configuration (static {dict(static or {})}) needs about "
            f"{_fmt_bytes(base + per_row)} of device memory but only {_fmt_bytes(free_bytes)} "
            f"is free per device; reduce the problem size or use a larger device"
        )
    per_device = max(int((memory_fraction * free_bytes - base) // per_row), 1)
    chunk = n_devices * per_device
    if cap is not None:
        chunk = min(chunk, cap)
    return MemoryPlan(int(chunk), int(base), int(per_row), int(free_bytes), "memory_analysis")


# ---------------------------------------------------------------------------------------
# Checkpoint folder
# ---------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write via a temporary file in the same folder, fsync, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=".chunk-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _chunk_path(folder: Path, s: int, c: int) -> Path:
    return folder / f"chunk-s{s:04d}-c{c:06d}.npz"


def _identity_hash(identity: Mapping[str, Any]) -> str:
    """SHA-256 of the run identity (grid, static grid, seeds, key, fingerprint)."""
    return hashlib.sha256(_dumps({k: identity[k] for k in _IDENTITY}).encode()).hexdigest()


def _chunk_digest(ident: str, rows: tuple[int, int], out: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the run identity, the row range and every output (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(ident.encode())
    h.update(np.asarray(rows, dtype=np.int64).tobytes())
    for k in sorted(out):
        v = np.ascontiguousarray(out[k])
        h.update(f"|{k}|{v.dtype.str}|{v.shape}|".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def _write_chunk(
    path: Path, rows: tuple[int, int], out: Mapping[str, np.ndarray], ident: str = ""
) -> None:
    """Write one finished chunk with its run identity and a SHA-256 of its contents."""
    arrays = {f"out:{k}": np.asarray(v) for k, v in out.items()}
    arrays["__rows__"] = np.asarray(rows, dtype=np.int64)
    arrays["__identity__"] = np.asarray(ident)
    arrays["__sha256__"] = np.asarray(
        _chunk_digest(ident, rows, {k: np.asarray(v) for k, v in out.items()})
    )
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))


class _CorruptChunk(ValueError):
    """A chunk file that cannot be read back intact (truncated, empty, altered bytes)."""


def _read_chunk(path: Path, rows: tuple[int, int], ident: str) -> dict[str, np.ndarray]:
    """Read and verify one chunk: checksum (else :class:`_CorruptChunk`), then identity and rows.

    Raises:
        _CorruptChunk: the file is unreadable or its contents do not match their checksum.
        ValueError: an intact file of another run (identity) or of other rows.
    """
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            files = set(z.files)
            if not {"__rows__", "__identity__", "__sha256__"} <= files:
                raise _CorruptChunk(
                    f"chunk file {path} lacks the run identity or checksum (written by "
                    f"another version of complemjax, or damaged)"
                )
            got_rows = tuple(int(r) for r in z["__rows__"])
            got_ident = str(z["__identity__"])
            digest = str(z["__sha256__"])
            out = {k[4:]: z[k] for k in sorted(files) if k.startswith("out:")}
    except _CorruptChunk:
        raise
    except Exception as err:  # BadZipFile, EOFError, OSError, ValueError from np.load ...
        raise _CorruptChunk(
            f"chunk file {path} is unreadable ({type(err).__name__}: {err})"
        ) from err
    if _chunk_digest(got_ident, got_rows, out) != digest:
        raise _CorruptChunk(f"chunk file {path} does not match its checksum (altered bytes)")
    if got_ident != ident:
        raise ValueError(
            f"`checkpoint_dir`: chunk file {path} was written by another run (run identity "
            f"{got_ident[:12]}..., this run is {ident[:12]}...); it was copied or mixed into "
            f"this folder. Remove it (it will be recomputed) or use the folder of its own run"
        )
    if got_rows != rows:
        raise ValueError(f"chunk file {path} holds rows {got_rows}, expected {rows}")
    for k, v in out.items():
        if v.ndim == 0 or v.shape[0] != rows[1] - rows[0]:
            raise _CorruptChunk(f"chunk file {path}: output `{k}` has shape {v.shape}")
    return out


def _move_aside(path: Path) -> Path:
    """Rename a corrupt chunk to ``<name>.corrupt[-n]`` (kept for inspection, never read)."""
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{n}")
        n += 1
    os.replace(path, target)
    return target


# ---------------------------------------------------------------------------------------
# Folder lock: one writing process per checkpoint folder
# ---------------------------------------------------------------------------------------

_HELD_LOCKS: set[str] = set()  # lock files held by this process


def _proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (field 22 of /proc/PID/stat), to tell reused pids apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return True
    now = _proc_start_time(pid)
    return not (start is not None and now is not None and now != start)


def _describe_holder(h: Mapping[str, Any]) -> str:
    since = h.get("created_unix")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
    return f"pid {h.get('pid')} on host {h.get('host')!r} (since {when})"


def _acquire_lock(folder: Path, ident: str) -> Path:
    """Create ``folder/LOCK`` exclusively (``O_CREAT | O_EXCL``) for this process.

    A lock whose holder is a dead process on this host (or a reused pid) is stale: it is
    reclaimed with a logged warning. A lock of a live process, or of another host (whose
    processes cannot be checked from here), raises a ValueError naming the holder.
    """
    path = folder / LOCK
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start": _proc_start_time(os.getpid()),
        "identity": ident,
        "nonce": os.urandom(8).hex(),
        "created_unix": time.time(),
    }
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
                fh.flush()
                os.fsync(fh.fileno())
            _HELD_LOCKS.add(str(path.resolve()))
            return path
        try:
            text = path.read_text()
            holder = json.loads(text)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(
                f"`checkpoint_dir` {folder} is locked ({path} exists but is unreadable: {err}); "
                f"another run may be starting. If no run uses this folder, delete {path}"
            ) from err
        ours = str(path.resolve()) in _HELD_LOCKS
        same_host = holder.get("host") == me["host"]
        pid = holder.get("pid")
        if (
            ours
            or not same_host
            or not isinstance(pid, int)
            or _pid_alive(pid, holder.get("start"))
        ):
            who = "this process (another run_grid call)" if ours else _describe_holder(holder)
            raise ValueError(
                f"`checkpoint_dir` {folder} is locked by {who}, which is writing a sweep "
                f"there; two runs must not share a folder. Wait for it, use another folder, "
                f"or, if that process is gone (e.g. another host that crashed), delete {path}"
            )
        # Stale: the holder died on this host. Reclaim by renaming, then re-check the
        # renamed content, so that two processes reclaiming at once cannot both win.
        aside = path.with_name(f"{LOCK}.stale-{me['nonce']}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        if aside.read_text() != text:  # someone else took it meanwhile: give it back
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            continue
        aside.unlink(missing_ok=True)
        _log.warning(
            "complemjax.sweep: reclaimed the stale lock of %s on %s (that process is gone)",
            folder,
            _describe_holder(holder),
        )
    raise ValueError(f"`checkpoint_dir` {folder}: could not take the lock {path} (contention)")


def live_lock_holder(folder: str | os.PathLike) -> str | None:
    """Who is writing the checkpoint folder now: ``"pid P on host 'H' (since ...)"``, or None.

    None when the folder has no lock or its holder is a dead process on this host (a
    stale lock, reclaimed by the next :func:`run_grid`). A lock of another host counts
    as live (its processes cannot be checked from here).
    """
    path = Path(folder) / LOCK
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return f"an unreadable lock file {path}"
    pid = holder.get("pid")
    if (
        holder.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not _pid_alive(pid, holder.get("start"))
        and str(path.resolve()) not in _HELD_LOCKS
    ):
        return None
    return _describe_holder(holder)


def _release_lock(path: Path, created_folder: bool) -> None:
    _HELD_LOCKS.discard(str(path.resolve()))
    path.unlink(missing_ok=True)
    folder = path.parent
    if created_folder and folder.exists() and not any(folder.iterdir()):
        folder.rmdir()  # nothing was written: leave no trace of a run that failed early


def _check_lock_identity(folder: Path, ident: str) -> None:
    """Non-writing processes of a multi-host run: the lock of process 0 is this run's."""
    path = folder / LOCK
    try:
        holder = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"`checkpoint_dir` {folder}: cannot read the lock {path} of process 0 ({err}); "
            f"is the folder on a filesystem shared by every process?"
        ) from err
    if holder.get("identity") != ident:
        raise ValueError(
            f"`checkpoint_dir` {folder} is locked by {_describe_holder(holder)} for another "
            f"run (identity {str(holder.get('identity'))[:12]}..., this process has "
            f"{ident[:12]}...): every process must run the same grid, key and fingerprint"
        )


_IDENTITY = ("grid", "static", "n_seeds", "key", "key_impl", "fingerprint")


def _check_manifest(folder: Path, identity: Mapping[str, Any]) -> dict | None:
    """Return the recorded manifest (None if the folder is new) or raise on a mismatch."""
    path = folder / MANIFEST
    if not path.exists():
        if folder.exists() and any(p for p in folder.iterdir() if p.name not in (MANIFEST, LOCK)):
            raise ValueError(
                f"`checkpoint_dir` {folder} is not empty and has no {MANIFEST}; refusing to "
                f"write sweep results into it (use an empty or new folder)"
            )
        return None
    try:
        recorded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"`checkpoint_dir` {folder}: unreadable {MANIFEST} ({err})") from err
    if recorded.get("format") != _FORMAT:
        raise ValueError(
            f"`checkpoint_dir` {folder}: {MANIFEST} has format {recorded.get('format')!r}, "
            f"expected {_FORMAT!r}"
        )
    for name in _IDENTITY:
        want = json.dumps(identity[name], separators=(",", ":"))
        got = json.dumps(recorded.get(name), separators=(",", ":"))
        if want != got:
            raise ValueError(
                f"`checkpoint_dir` {folder} holds results of a different sweep: `{name}` was "
                f"{_short(got)} there and is {_short(want)} now; finished results are never "
                f"overwritten, so use another folder (or delete this one to start again)"
            )
    return recorded


def _short(s: str, n: int = 200) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _finished(folder: Path, n_static: int) -> set[tuple[int, int]]:
    done = set()
    if folder.exists():
        for p in folder.iterdir():
            m = _CHUNK_RE.match(p.name)
            if m and int(m.group(1)) < n_static:
                done.add((int(m.group(1)), int(m.group(2))))
    return done


# ---------------------------------------------------------------------------------------
# Multi-process helpers (no-ops in a single process)
# ---------------------------------------------------------------------------------------


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _global_min(values: Sequence[int]) -> list[int]:
    if jax.process_count() == 1:
        return list(values)
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(values, dtype=np.int64))
    return [int(v) for v in np.min(np.asarray(gathered).reshape(-1, len(values)), axis=0)]


def _to_host(out: Any) -> dict[str, np.ndarray]:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    else:
        out = jax.device_get(out)
    return {k: np.asarray(v) for k, v in out.items()}


def _put(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


# ---------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------


def run_grid(
    fn: Callable[..., Mapping[str, jax.Array]],
    *,
    key: jax.Array,
    grid: Mapping[str, Sequence[float]] | None = None,
    n_seeds: int = 1,
    static: Mapping[str, Sequence[Any]] | None = None,
    chunk_size: int | str | None = None,
    progress: bool = True,
    description: str = "sweep",
    checkpoint_dir: str | os.PathLike | None = None,
    fingerprint: str | None = None,
    resume: bool = True,
    devices: Sequence[jax.Device] | None = None,
    memory_fraction: float = 0.5,
    free_bytes: int | None = None,
) -> pd.DataFrame:
    """Evaluate ``fn`` on every (static config, dynamic config, seed) and return a table.

    Row ``i`` of static bucket ``b`` evaluates ``fn(fold_in(key, seed_i), **dynamic_i,
    **static_b)``; rows are configuration-major, seed-minor. Each chunk of rows is one call
    of ``jit(shard_map(vmap(fn)))`` sharded over ``devices`` along the mesh axis
    ``"batch"``.

    Args:
        fn: pure function ``fn(key, **dynamic, **static) -> {name: Array}``; each output
            is a scalar or a small fixed-shape array (flattened into ``name_i`` columns).
        key: PRNG key; seed ``s`` uses ``fold_in(key, s)`` for every configuration.
        grid: dynamic knobs ``{name: values}`` (floats, passed as float32), vmapped
            together with seeds.
        n_seeds: number of seeds per configuration.
        static: knobs that change shapes or control flow ``{name: values}``; one
            compiled program per combination (bucketing).
        chunk_size: rows (configurations × seeds) per compiled call: an int, None (the
            whole bucket in one call) or ``"auto"`` (from the memory estimate, see
            :func:`plan_chunk_size`; with ``checkpoint_dir``, also at least
            :data:`AUTO_MIN_CHUNKS_WITH_CHECKPOINT` chunks per bucket). Rounded up to a
            multiple of the device count; the last chunk is padded by repeating its final
            row and the padding is dropped. When resuming, the chunk sizes recorded in the
            manifest are used (the layout of finished chunks is fixed).
        progress: show a progress bar over configurations × seeds (with time left).
        description: label of the progress bar.
        checkpoint_dir: folder for the manifest and the finished chunks (see the module
            docstring); None keeps everything in memory.
        fingerprint: a string identifying everything else that determines the results
            (e.g. ``config_fingerprint(study_config)``); recorded in the manifest and
            checked on resume.
        resume: with ``checkpoint_dir``, continue a sweep whose manifest matches. If
            False and the folder already holds finished chunks, raise instead.
        devices: devices to shard over (default: ``jax.devices()``, i.e. all local
            devices, or all devices of all processes after :func:`init_distributed`).
        memory_fraction: share of free device memory ``"auto"`` may plan for, in (0, 1].
        free_bytes: free bytes per device (default: measured, see
            :func:`device_free_bytes`); used by ``"auto"`` and the pre-run memory check.

    Returns:
        A tidy DataFrame, one row per seed × configuration: static knob columns, dynamic
        knob columns, ``seed``, then the outputs of ``fn``. ``df.attrs["sweep"]`` holds the
        device count, chunk sizes, chunks computed and skipped and the seconds spent
        computing and on checkpoint files.

    Raises:
        ValueError: empty grids, bad ``n_seeds``/``chunk_size``/``key``, a checkpoint folder
            of another sweep, or a configuration that cannot fit into device memory.
    """
    t_start = time.perf_counter()
    if not callable(fn):
        raise ValueError(f"`fn` must be a function fn(key, **knobs) -> dict, got {fn!r}")
    n_seeds = _checks.check_positive_int("n_seeds", n_seeds)
    dyn_rows = expand_grid(grid) if grid else [{}]
    static_rows = expand_grid(static) if static else [{}]
    _check_knob_names(grid or {}, static or {})
    for name, values in (grid or {}).items():
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                raise ValueError(
                    f"`grid` entry `{name}` must hold numbers (each is passed to `fn` as a "
                    f"float32 scalar), got {v!r} ({type(v).__name__}); knobs that are not "
                    f"numbers belong in `static`"
                )
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"`chunk_size` must be an int, None or 'auto', got {chunk_size!r}")
    elif chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    _checks.check_in_range("memory_fraction", memory_fraction, 0.0, 1.0, lo_open=True)
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValueError(f"`fingerprint` must be a string, got {type(fingerprint).__name__}")
    kd = _split_key(key)
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` must name at least one device, got an empty list")
    n_dev = len(devices)
    mesh = Mesh(np.asarray(devices), ("batch",))
    sharding = NamedSharding(mesh, P("batch"))
    if free_bytes is None:
        local = [d for d in devices if d.process_index == jax.process_index()] or devices[:1]
        free_bytes = min(device_free_bytes(d)[0] for d in local)
    else:
        free_bytes = _checks.check_positive_int("free_bytes", free_bytes)

    n_flat = len(dyn_rows) * n_seeds
    dyn_names = list(dyn_rows[0])
    # Flat axis: configuration-major, seed-minor.
    seeds = np.tile(np.arange(n_seeds, dtype=np.int32), len(dyn_rows))
    knob_cols = {
        name: np.repeat(np.asarray([r[name] for r in dyn_rows], dtype=np.float32), n_seeds)
        for name in dyn_names
    }

    # --- checkpoint folder: lock, identity and finished chunks before any work -----------
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    writer = jax.process_index() == 0
    recorded = None
    done: set[tuple[int, int]] = set()
    identity = {
        "grid": _jsonable(dict(grid or {})),
        "static": _jsonable(dict(static or {})),
        "n_seeds": n_seeds,
        "key": kd.data.tolist(),
        "key_impl": kd.impl,
        "fingerprint": fingerprint,
    }
    ident = _identity_hash(identity)
    lock: Path | None = None
    created_folder = False
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"`checkpoint_dir` {folder} exists and is not a folder")
        err: Exception | None = None
        if writer:  # process 0 writes, so it alone holds the lock
            try:
                created_folder = not folder.exists()
                folder.mkdir(parents=True, exist_ok=True)
                lock = _acquire_lock(folder, ident)
            except (ValueError, OSError) as e:
                if created_folder and folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
                err = (
                    e
                    if isinstance(e, ValueError)
                    else ValueError(
                        f"`checkpoint_dir` {folder}: cannot create the folder or its lock ({e})"
                    )
                )
        _agree(err, f"`checkpoint_dir` {folder}: process 0 could not take the folder's lock")
        err = None
        if not writer:  # the others verify that process 0 locked it for this very run
            try:
                _check_lock_identity(folder, ident)
            except ValueError as e:
                err = e
        _agree(err, f"`checkpoint_dir` {folder}: the processes run different sweeps")
    try:
        return _run_locked(
            fn=fn,
            key=key,
            kd=kd,
            n_seeds=n_seeds,
            static_rows=static_rows,
            dyn_names=dyn_names,
            n_flat=n_flat,
            seeds=seeds,
            knob_cols=knob_cols,
            chunk_size=chunk_size,
            folder=folder,
            writer=writer,
            identity=identity,
            ident=ident,
            resume=resume,
            recorded=recorded,
            done=done,
            n_dev=n_dev,
            mesh=mesh,
            sharding=sharding,
            free_bytes=free_bytes,
            memory_fraction=memory_fraction,
            description=description,
            progress=progress,
            t_start=t_start,
        )
    finally:
        if lock is not None:
            _release_lock(lock, created_folder)


def _agree(err: Exception | None, other: str) -> None:
    """Raise ``err`` here, or ``other`` when another process failed (all processes agree)."""
    ok = _global_min([0 if err is not None else 1])[0]
    if err is not None:
        raise err
    if not ok:
        raise ValueError(other)


def _verify_finished(
    folder: Path, found: set[tuple[int, int]], chunks: Sequence[int], n_flat: int, ident: str
) -> tuple[set[tuple[int, int]], list[tuple[Path, str]]]:
    """Read every finished chunk; return the intact ones and the corrupt ones (path, why)."""
    n_chunks = [-(-n_flat // c) for c in chunks]
    good, bad = set(), []
    for s, c in sorted(found):
        if c >= n_chunks[s]:
            continue
        path = _chunk_path(folder, s, c)
        try:
            _read_chunk(path, (c * chunks[s], min((c + 1) * chunks[s], n_flat)), ident)
        except _CorruptChunk as e:
            bad.append((path, str(e)))
        else:
            good.add((s, c))
    return good, bad


def _run_locked(
    *,
    fn, key, kd, n_seeds, static_rows, dyn_names, n_flat, seeds, knob_cols, chunk_size,
    folder, writer, identity, ident, resume, recorded, done, n_dev, mesh, sharding,
    free_bytes, memory_fraction, description, progress, t_start,
) -> pd.DataFrame:  # fmt: skip
    """The body of :func:`run_grid` once the checkpoint folder (if any) is locked."""
    if folder is not None:
        recorded = _check_manifest(folder, identity)
        _sync("complemjax.sweep.check")
        if recorded is not None:
            found = _finished(folder, len(static_rows))
            if found and not resume:
                raise ValueError(
                    f"`checkpoint_dir` {folder} already holds {len(found)} finished chunks of "
                    f"this sweep and `resume` is False; refusing to overwrite them (pass "
                    f"resume=True, or delete the folder to start again)"
                )
            chunks_rec = [int(c) for c in recorded["chunk_sizes"]]
            done, corrupt = _verify_finished(folder, found, chunks_rec, n_flat, ident)
            _sync("complemjax.sweep.verified")
            if writer:
                for path, why in corrupt:
                    aside = _move_aside(path)
                    _log.warning("complemjax.sweep: %s; moved to %s, recomputing it", why, aside)
            _sync("complemjax.sweep.moved")

    # --- chunk sizes and compiled programs, before any chunk runs -------------------------
    if recorded is not None:
        chunks = [int(c) for c in recorded["chunk_sizes"]]
    else:
        chunks = []
        for srow in static_rows:
            if chunk_size == "auto":
                plan = plan_chunk_size(
                    fn,
                    key=key,
                    knob_names=dyn_names,
                    static=srow,
                    n_devices=n_dev,
                    max_rows=n_flat,
                    free_bytes=free_bytes,
                    memory_fraction=memory_fraction,
                )
                c = plan.chunk_size
                if folder is not None:
                    c = min(c, _round_up(-(-n_flat // AUTO_MIN_CHUNKS_WITH_CHECKPOINT), n_dev))
            else:
                c = n_flat if chunk_size is None else min(chunk_size, n_flat)
            chunks.append(_round_up(max(c, 1), n_dev))
        chunks = _global_min(chunks)
    n_chunks = [-(-n_flat // c) for c in chunks]
    todo = [
        (s, c) for s in range(len(static_rows)) for c in range(n_chunks[s]) if (s, c) not in done
    ]
    programs: dict[int, Any] = {}
    for s in sorted({s for s, _ in todo}):
        batch = _round_up(chunks[s], n_dev)
        body = jax.shard_map(
            _row_fn(fn, kd, static_rows[s]),
            mesh=mesh,
            in_specs=(P("batch"), P("batch")),
            out_specs=P("batch"),
            check_vma=False,
        )
        compiled = jax.jit(body).lower(*_abstract(batch, dyn_names, sharding)).compile()
        need = _compiled_bytes(compiled)  # per device (the SPMD program of one device)
        if need is not None and need > free_bytes:
            raise ValueError(
                f"a chunk of {batch} rows (static {static_rows[s]}) needs about "
                f"{_fmt_bytes(need)} per device but only {_fmt_bytes(free_bytes)} is "
                f"free; use a smaller `chunk_size` or chunk_size='auto'"
            )
        programs[s] = (batch, compiled)

    if folder is not None and recorded is None:
        if writer:
            manifest = {
                "format": _FORMAT,
                **identity,
                "chunk_sizes": chunks,
                "n_rows_per_static": n_flat,
                "n_chunks": n_chunks,
                "description": description,
                "jax_version": jax.__version__,
                "created_unix": time.time(),
            }
            text = json.dumps(manifest, indent=1)
            _atomic_write(folder / MANIFEST, lambda fh: fh.write(text.encode()))
        _sync("complemjax.sweep.manifest")
    elif folder is not None and writer:
        # Leftovers of a killed write. Safe: this process holds the folder's lock, so no
        # other run is writing here.
        for p in folder.glob(".chunk-*.tmp"):
            p.unlink(missing_ok=True)

    # --- run -----------------------------------------------------------------------------
    total = len(static_rows) * n_flat
    n_done_rows = sum(min((c + 1) * chunks[s], n_flat) - c * chunks[s] for s, c in done)
    bar = tqdm(
        total=total,
        initial=n_done_rows,
        desc=description,
        disable=not progress or not writer,
        unit="config",
        dynamic_ncols=True,
    )
    bar.set_postfix(devices=n_dev)
    t_compute = t_io = 0.0
    memory: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for s, c in todo:
        batch, compiled = programs[s]
        lo, hi = c * chunks[s], min((c + 1) * chunks[s], n_flat)
        idx = np.minimum(np.arange(lo, lo + batch), hi - 1)  # pad with the last row
        t0 = time.perf_counter()
        args = (
            _put(seeds[idx], sharding),
            {name: _put(col[idx], sharding) for name, col in knob_cols.items()},
        )
        out = {k: v[: hi - lo] for k, v in _to_host(compiled(*args)).items()}
        t1 = time.perf_counter()
        t_compute += t1 - t0
        if folder is None:
            memory[(s, c)] = out
        elif writer:
            _write_chunk(_chunk_path(folder, s, c), (lo, hi), out, ident)
            t_io += time.perf_counter() - t1
        bar.update(hi - lo)
    bar.close()
    if folder is not None:
        _sync("complemjax.sweep.done")

    # --- assemble ------------------------------------------------------------------------
    t0 = time.perf_counter()
    frames = []
    for s, srow in enumerate(static_rows):
        parts = []
        for c in range(n_chunks[s]):
            lo, hi = c * chunks[s], min((c + 1) * chunks[s], n_flat)
            if folder is None:
                parts.append(memory.pop((s, c)))
            else:
                parts.append(_read_chunk(_chunk_path(folder, s, c), (lo, hi), ident))
        names = list(parts[0])
        for part in parts[1:]:
            if list(part) != names:
                raise ValueError(
                    f"`checkpoint_dir` {folder}: chunk outputs differ ({names} vs {list(part)})"
                )
        merged = {k: np.concatenate([p[k] for p in parts]) for k in names}
        columns: dict[str, Any] = {name: [srow[name]] * n_flat for name in srow}
        columns.update(knob_cols)
        columns["seed"] = seeds.astype(np.int64)
        columns.update(_flatten_outputs(merged, n_flat))
        frames.append(pd.DataFrame(columns))
    df = pd.concat(frames, ignore_index=True)
    if folder is not None:
        t_io += time.perf_counter() - t0
    df.attrs["sweep"] = {
        "n_devices": n_dev,
        "chunk_sizes": chunks,
        "chunks_computed": len(todo),
        "chunks_skipped": len(done),
        "seconds_compute": t_compute,
        "seconds_checkpoint_io": t_io,
        "seconds_total": time.perf_counter() - t_start,
    }
    return df
