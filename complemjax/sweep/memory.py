"""Device memory: free bytes per device, bytes of a compiled program, chunk-size planning."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax

from complemjax import _checks
from complemjax.sweep.programs import abstract_rows, row_fn, split_key

__all__ = [
    "FALLBACK_FREE_BYTES",
    "MemoryPlan",
    "compiled_bytes",
    "device_free_bytes",
    "fmt_bytes",
    "plan_chunk_size",
    "round_up",
]

#: Free bytes assumed per device when neither ``device.memory_stats()`` nor the host's
#: available RAM can be read (e.g. CPU on a system without ``/proc/meminfo``).
FALLBACK_FREE_BYTES = 1 << 30


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


def compiled_bytes(compiled: Any) -> int | None:
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


def round_up(x: int, m: int) -> int:
    """Smallest multiple of ``m`` that is at least ``x``."""
    return -(-x // m) * m


def fmt_bytes(b: float) -> str:
    """Bytes in MiB for messages (``"12.5 MiB"``)."""
    return f"{b / 2**20:.1f} MiB"


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
    kd = split_key(key)
    if free_bytes is None:
        free_bytes = min(device_free_bytes(d)[0] for d in jax.local_devices())
    rows = row_fn(fn, kd, dict(static or {}))
    sizes = []
    for b in (1, 2):
        compiled = jax.jit(rows).lower(*abstract_rows(b, knob_names)).compile()
        sizes.append(compiled_bytes(compiled))
    cap = None if max_rows is None else round_up(max_rows, n_devices)
    if sizes[0] is None or sizes[1] is None:
        return MemoryPlan(n_devices, 0, 0, int(free_bytes), "unavailable")
    m1, m2 = sizes
    per_row = max(m2 - m1, math.ceil(m2 / 2), 1)
    base = max(m1 - per_row, 0)
    if base + per_row > free_bytes:
        raise ValueError(
            f"one configuration (static {dict(static or {})}) needs about "
            f"{fmt_bytes(base + per_row)} of device memory but only {fmt_bytes(free_bytes)} "
            f"is free per device; reduce the problem size or use a larger device"
        )
    per_device = max(int((memory_fraction * free_bytes - base) // per_row), 1)
    chunk = n_devices * per_device
    if cap is not None:
        chunk = min(chunk, cap)
    return MemoryPlan(int(chunk), int(base), int(per_row), int(free_bytes), "memory_analysis")
