"""XLA flags complemjax sets before JAX creates its CPU backend.

On jaxlib 0.10 (CPU), large vmapped programs such as the synthetic alignment study (many
probes, eigendecompositions and top-k neighbour searches batched over seeds) were seen to
deadlock intermittently: every runtime thread waits and the result never arrives
(reproduced in 5 of 7 runs of a tiny study grid on this project's 2-core machines).
Turning off XLA's concurrency-optimised CPU scheduler removed the hang in every run
(0 of 8). This module adds ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` to
``XLA_FLAGS`` unless the user already chose a value for it, or set
``COMPLEMJAX_KEEP_XLA_FLAGS=1``. It only takes effect if imported before JAX runs its
first computation; the flag does not affect GPU or TPU backends.
"""

from __future__ import annotations

import os

_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def apply() -> None:
    """Add the scheduler flag to ``XLA_FLAGS`` (idempotent, respects user choices)."""
    if os.environ.get("COMPLEMJAX_KEEP_XLA_FLAGS"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}=false".strip()
