"""complemjax: semantic and collaborative views of the same items, in JAX.

The public API of every module is re-exported here; submodules stay importable as
``complemjax.<module>`` (e.g. ``complemjax.data``, ``complemjax.fusion``).
"""

from complemjax import _xla_flags

_xla_flags.apply()  # before any JAX computation; see complemjax/_xla_flags.py

from complemjax import (  # noqa: E402
    cf,
    complementarity,
    data,
    generative,
    probes,
    ranking,
    recommenders,
    report,
    semantic,
    similarity,
    sweep,
)
from complemjax.cf import *  # noqa: E402, F403
from complemjax.complementarity import *  # noqa: E402, F403
from complemjax.generative import *  # noqa: E402, F403
from complemjax.probes import *  # noqa: E402, F403
from complemjax.ranking import *  # noqa: E402, F403
from complemjax.recommenders import *  # noqa: E402, F403
from complemjax.report import *  # noqa: E402, F403
from complemjax.semantic import *  # noqa: E402, F403
from complemjax.similarity import *  # noqa: E402, F403
from complemjax.sweep import *  # noqa: E402, F403

__version__ = "0.1.0"

_MODULES = (
    cf,
    complementarity,
    generative,
    probes,
    ranking,
    recommenders,
    report,
    semantic,
    similarity,
    sweep,
)
__all__ = [*sorted({name for m in _MODULES for name in m.__all__}), "data", "__version__"]
