"""The runner: :func:`run_grid` as a sequence of named steps.

1. check the arguments and lay out the flat axis (configuration-major, seed-minor);
2. lock the checkpoint folder (if any) and read what a previous run finished;
3. choose the chunk sizes and compile one program per static bucket, checking memory;
4. record the manifest, run the chunks that are not finished, write each one;
5. assemble the table from the chunks (always from the files with a checkpoint folder).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from complemjax import _checks
from complemjax.sweep import checkpoint
from complemjax.sweep.distributed import global_min, put_sharded, sync, to_host
from complemjax.sweep.grid import check_grid_values, check_knob_names, expand_grid, flatten_outputs
from complemjax.sweep.memory import (
    compiled_bytes,
    device_free_bytes,
    fmt_bytes,
    plan_chunk_size,
    round_up,
)
from complemjax.sweep.programs import RootKey, abstract_rows, row_fn, split_key

__all__ = ["AUTO_MIN_CHUNKS_WITH_CHECKPOINT", "run_grid"]

#: With ``checkpoint_dir`` and ``chunk_size="auto"``, each static bucket is split into at
#: least this many chunks (so an interruption loses at most about 1/8 of a bucket).
AUTO_MIN_CHUNKS_WITH_CHECKPOINT = 8


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
    run = _prepare(
        fn,
        key=key,
        grid=grid,
        n_seeds=n_seeds,
        static=static,
        chunk_size=chunk_size,
        progress=progress,
        description=description,
        checkpoint_dir=checkpoint_dir,
        fingerprint=fingerprint,
        devices=devices,
        memory_fraction=memory_fraction,
        free_bytes=free_bytes,
    )
    lock, created_folder = None, False
    if run.folder is not None:  # lock, identity and finished chunks before any work
        lock, created_folder = checkpoint.take_folder(run.folder, run.ident, run.writer)
    try:
        return _run_locked(run, resume=resume, t_start=t_start)
    finally:
        if lock is not None:
            checkpoint.release_lock(lock, created_folder)


@dataclasses.dataclass(frozen=True)
class _Run:
    """A checked :func:`run_grid` call: the function, the flat axis, devices and folder."""

    fn: Callable
    key: jax.Array
    kd: RootKey
    static_rows: list[dict[str, Any]]
    dyn_names: list[str]
    n_flat: int  # rows per static bucket: configurations × seeds
    seeds: np.ndarray  # [n_flat] int32, configuration-major, seed-minor
    knob_cols: dict[str, np.ndarray]  # name -> [n_flat] float32
    chunk_size: int | str | None
    n_dev: int
    mesh: Mesh
    sharding: NamedSharding
    free_bytes: int
    memory_fraction: float
    folder: Path | None
    writer: bool  # process 0: the one that writes files
    identity: dict[str, Any]
    ident: str
    description: str
    progress: bool


def _prepare(
    fn, *, key, grid, n_seeds, static, chunk_size, progress, description, checkpoint_dir,
    fingerprint, devices, memory_fraction, free_bytes,
) -> _Run:  # fmt: skip
    """Check every argument of :func:`run_grid` (before any work) and lay out the rows."""
    if not callable(fn):
        raise ValueError(f"`fn` must be a function fn(key, **knobs) -> dict, got {fn!r}")
    n_seeds = _checks.check_positive_int("n_seeds", n_seeds)
    dyn_rows = expand_grid(grid) if grid else [{}]
    static_rows = expand_grid(static) if static else [{}]
    check_knob_names(grid or {}, static or {})
    check_grid_values(grid or {})
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"`chunk_size` must be an int, None or 'auto', got {chunk_size!r}")
    elif chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    _checks.check_in_range("memory_fraction", memory_fraction, 0.0, 1.0, lo_open=True)
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValueError(f"`fingerprint` must be a string, got {type(fingerprint).__name__}")
    kd = split_key(key)
    devices, mesh, free_bytes = _devices(devices, free_bytes)
    identity = checkpoint.run_identity(grid or {}, static or {}, n_seeds, kd, fingerprint)
    # Flat axis: configuration-major, seed-minor.
    dyn_names = list(dyn_rows[0])
    return _Run(
        fn=fn,
        key=key,
        kd=kd,
        static_rows=static_rows,
        dyn_names=dyn_names,
        n_flat=len(dyn_rows) * n_seeds,
        seeds=np.tile(np.arange(n_seeds, dtype=np.int32), len(dyn_rows)),
        knob_cols={
            name: np.repeat(np.asarray([r[name] for r in dyn_rows], dtype=np.float32), n_seeds)
            for name in dyn_names
        },
        chunk_size=chunk_size,
        n_dev=len(devices),
        mesh=mesh,
        sharding=NamedSharding(mesh, P("batch")),
        free_bytes=free_bytes,
        memory_fraction=memory_fraction,
        folder=None if checkpoint_dir is None else Path(checkpoint_dir),
        writer=jax.process_index() == 0,
        identity=identity,
        ident=checkpoint.identity_hash(identity),
        description=description,
        progress=progress,
    )


def _devices(
    devices: Sequence[jax.Device] | None, free_bytes: int | None
) -> tuple[list[jax.Device], Mesh, int]:
    """The devices, their one-axis mesh ``"batch"`` and the free bytes per device.

    The free bytes default to the smallest measured over this process's devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` must name at least one device, got an empty list")
    mesh = Mesh(np.asarray(devices), ("batch",))
    if free_bytes is None:
        local = [d for d in devices if d.process_index == jax.process_index()] or devices[:1]
        free_bytes = min(device_free_bytes(d)[0] for d in local)
    else:
        free_bytes = _checks.check_positive_int("free_bytes", free_bytes)
    return devices, mesh, free_bytes


def _run_locked(run: _Run, *, resume: bool, t_start: float) -> pd.DataFrame:
    """The body of :func:`run_grid` once the checkpoint folder (if any) is locked."""
    recorded, done = None, set()
    if run.folder is not None:
        recorded, done = checkpoint.resume_state(
            run.folder,
            run.identity,
            run.ident,
            n_static=len(run.static_rows),
            n_flat=run.n_flat,
            resume=resume,
            writer=run.writer,
        )
    chunks = _chunk_sizes(run, recorded)
    n_chunks = [-(-run.n_flat // c) for c in chunks]
    todo = [
        (s, c)
        for s in range(len(run.static_rows))
        for c in range(n_chunks[s])
        if (s, c) not in done
    ]
    programs = _compile(run, chunks, todo)
    _record_or_clean(run, recorded, chunks, n_chunks)
    memory, t_compute, t_io = _run_chunks(run, chunks, todo, done, programs)
    t0 = time.perf_counter()
    df = _assemble(run, chunks, n_chunks, memory)
    if run.folder is not None:
        t_io += time.perf_counter() - t0
    df.attrs["sweep"] = {
        "n_devices": run.n_dev,
        "chunk_sizes": chunks,
        "chunks_computed": len(todo),
        "chunks_skipped": len(done),
        "seconds_compute": t_compute,
        "seconds_checkpoint_io": t_io,
        "seconds_total": time.perf_counter() - t_start,
    }
    return df


def _chunk_sizes(run: _Run, recorded: dict | None) -> list[int]:
    """Rows per chunk of each static bucket: the manifest's on resume, else planned.

    Planned sizes are multiples of the device count, the same on every process (minimum).
    """
    if recorded is not None:
        return [int(c) for c in recorded["chunk_sizes"]]
    chunks = []
    for srow in run.static_rows:
        if run.chunk_size == "auto":
            plan = plan_chunk_size(
                run.fn,
                key=run.key,
                knob_names=run.dyn_names,
                static=srow,
                n_devices=run.n_dev,
                max_rows=run.n_flat,
                free_bytes=run.free_bytes,
                memory_fraction=run.memory_fraction,
            )
            c = plan.chunk_size
            if run.folder is not None:
                min_chunks = -(-run.n_flat // AUTO_MIN_CHUNKS_WITH_CHECKPOINT)
                c = min(c, round_up(min_chunks, run.n_dev))
        else:
            c = run.n_flat if run.chunk_size is None else min(run.chunk_size, run.n_flat)
        chunks.append(round_up(max(c, 1), run.n_dev))
    return global_min(chunks)


def _compile(
    run: _Run, chunks: Sequence[int], todo: Sequence[tuple[int, int]]
) -> dict[int, tuple[int, Any]]:
    """``{bucket: (rows, compiled jit(shard_map(vmap(fn))))}`` for the buckets left to run.

    Raises:
        ValueError: when a compiled chunk needs more than the free memory per device.
    """
    programs: dict[int, tuple[int, Any]] = {}
    for s in sorted({s for s, _ in todo}):
        batch = round_up(chunks[s], run.n_dev)
        body = jax.shard_map(
            row_fn(run.fn, run.kd, run.static_rows[s]),
            mesh=run.mesh,
            in_specs=(P("batch"), P("batch")),
            out_specs=P("batch"),
            check_vma=False,
        )
        abstract = abstract_rows(batch, run.dyn_names, run.sharding)
        compiled = jax.jit(body).lower(*abstract).compile()
        need = compiled_bytes(compiled)  # per device (the SPMD program of one device)
        if need is not None and need > run.free_bytes:
            raise ValueError(
                f"a chunk of {batch} rows (static {run.static_rows[s]}) needs about "
                f"{fmt_bytes(need)} per device but only {fmt_bytes(run.free_bytes)} is "
                f"free; use a smaller `chunk_size` or chunk_size='auto'"
            )
        programs[s] = (batch, compiled)
    return programs


def _record_or_clean(
    run: _Run, recorded: dict | None, chunks: list[int], n_chunks: list[int]
) -> None:
    """Write the manifest of a new folder, or remove partial writes left in a resumed one."""
    if run.folder is None:
        return
    if recorded is None:
        if run.writer:
            checkpoint.write_manifest(
                run.folder, run.identity, chunks, run.n_flat, n_chunks, run.description
            )
        sync("complemjax.sweep.manifest")
    elif run.writer:
        # Safe: this process holds the folder's lock, so no other run is writing here.
        checkpoint.remove_partial_writes(run.folder)


def _rows(run: _Run, chunks: Sequence[int], s: int, c: int) -> tuple[int, int]:
    """Row range ``[lo, hi)`` of chunk ``c`` of bucket ``s`` on the flat axis."""
    return c * chunks[s], min((c + 1) * chunks[s], run.n_flat)


def _run_chunks(
    run: _Run,
    chunks: Sequence[int],
    todo: Sequence[tuple[int, int]],
    done: set[tuple[int, int]],
    programs: Mapping[int, tuple[int, Any]],
) -> tuple[dict[tuple[int, int], dict[str, np.ndarray]], float, float]:
    """Run the unfinished chunks; write each one (writer) or keep it in memory (no folder).

    Returns:
        ``(in_memory, seconds_compute, seconds_io)``; ``in_memory`` is empty with a folder.
    """
    n_done_rows = sum(hi - lo for lo, hi in (_rows(run, chunks, s, c) for s, c in done))
    bar = tqdm(
        total=len(run.static_rows) * run.n_flat,
        initial=n_done_rows,
        desc=run.description,
        disable=not run.progress or not run.writer,
        unit="config",
        dynamic_ncols=True,
    )
    bar.set_postfix(devices=run.n_dev)
    t_compute = t_io = 0.0
    memory: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for s, c in todo:
        batch, compiled = programs[s]
        lo, hi = _rows(run, chunks, s, c)
        idx = np.minimum(np.arange(lo, lo + batch), hi - 1)  # pad with the last row
        t0 = time.perf_counter()
        args = (
            put_sharded(run.seeds[idx], run.sharding),
            {name: put_sharded(col[idx], run.sharding) for name, col in run.knob_cols.items()},
        )
        out = {k: v[: hi - lo] for k, v in to_host(compiled(*args)).items()}
        t1 = time.perf_counter()
        t_compute += t1 - t0
        if run.folder is None:
            memory[(s, c)] = out
        elif run.writer:
            path = checkpoint.chunk_path(run.folder, s, c)
            checkpoint.write_chunk(path, (lo, hi), out, run.ident)
            t_io += time.perf_counter() - t1
        bar.update(hi - lo)
    bar.close()
    if run.folder is not None:
        sync("complemjax.sweep.done")
    return memory, t_compute, t_io


def _assemble(
    run: _Run,
    chunks: Sequence[int],
    n_chunks: Sequence[int],
    memory: dict[tuple[int, int], dict[str, np.ndarray]],
) -> pd.DataFrame:
    """The table of every bucket: knob columns, ``seed``, then the flattened outputs."""
    frames = []
    for s, srow in enumerate(run.static_rows):
        parts = []
        for c in range(n_chunks[s]):
            if run.folder is None:
                parts.append(memory.pop((s, c)))
            else:
                path = checkpoint.chunk_path(run.folder, s, c)
                parts.append(checkpoint.read_chunk(path, _rows(run, chunks, s, c), run.ident))
        names = list(parts[0])
        for part in parts[1:]:
            if list(part) != names:
                raise ValueError(
                    f"`checkpoint_dir` {run.folder}: chunk outputs differ ({names} vs {list(part)})"
                )
        merged = {k: np.concatenate([p[k] for p in parts]) for k in names}
        columns: dict[str, Any] = {name: [srow[name]] * run.n_flat for name in srow}
        columns.update(run.knob_cols)
        columns["seed"] = run.seeds.astype(np.int64)
        columns.update(flatten_outputs(merged, run.n_flat))
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)
