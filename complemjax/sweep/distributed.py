"""Several processes: joining a multi-host run and the collectives a sweep needs.

Every helper but :func:`init_distributed` is a no-op (or a plain host transfer) in a
single process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from complemjax import _checks

__all__ = ["agree", "global_min", "init_distributed", "put_sharded", "sync", "to_host"]


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """Join a multi-host run (``jax.distributed.initialize``) and return ``(index, count)``.

    Call it once per process, before any other JAX call, then run the same
    :func:`~complemjax.sweep.run_grid` call on every process. The mesh spans the devices
    of all processes; each process feeds the rows of its own devices, outputs are
    all-gathered so every process returns the full table, and only process 0 writes the
    manifest and chunk files. With ``checkpoint_dir``, the folder must be on a filesystem
    shared by all processes (every process reads the manifest and the finished chunks).

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


def sync(name: str) -> None:
    """Barrier named ``name`` across all processes."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def global_min(values: Sequence[int]) -> list[int]:
    """Elementwise minimum of ``values`` over all processes."""
    if jax.process_count() == 1:
        return list(values)
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(values, dtype=np.int64))
    return [int(v) for v in np.min(np.asarray(gathered).reshape(-1, len(values)), axis=0)]


def agree(err: Exception | None, other: str) -> None:
    """Raise ``err`` here, or ``other`` when another process failed (all processes agree)."""
    ok = global_min([0 if err is not None else 1])[0]
    if err is not None:
        raise err
    if not ok:
        raise ValueError(other)


def to_host(out: Any) -> dict[str, np.ndarray]:
    """Outputs ``{name: sharded array}`` as full NumPy arrays on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    else:
        out = jax.device_get(out)
    return {k: np.asarray(v) for k, v in out.items()}


def put_sharded(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array with ``sharding`` whose shards are read from the host array ``host``."""
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])
