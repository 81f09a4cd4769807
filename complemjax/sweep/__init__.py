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

# LOCK, MANIFEST, FALLBACK_FREE_BYTES and AUTO_MIN_CHUNKS_WITH_CHECKPOINT stay module
# attributes (``sweep.LOCK``) as they were when the sweep was one module.
from complemjax.sweep.checkpoint import LOCK, MANIFEST, live_lock_holder  # noqa: F401
from complemjax.sweep.distributed import init_distributed
from complemjax.sweep.grid import code_fingerprint, config_fingerprint, expand_grid
from complemjax.sweep.memory import (
    FALLBACK_FREE_BYTES,  # noqa: F401
    MemoryPlan,
    device_free_bytes,
    plan_chunk_size,
)
from complemjax.sweep.run import AUTO_MIN_CHUNKS_WITH_CHECKPOINT, run_grid  # noqa: F401

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
