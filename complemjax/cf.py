"""Compatibility names for the collaborative-filtering baselines (moved to ``models``).

BPR-MF, EASE and popularity now live in :mod:`complemjax.models.mf`,
:mod:`complemjax.models.ease` and :mod:`complemjax.models.popularity`, next to LightGCN
and the one selection protocol (:mod:`complemjax.models.protocol`). This module only
re-exports their historical names (``cf.fit_bpr``, ``cf.select_bpr``, ``cf.fit_ease``,
``cf.ease_score_fn``, ``cf.popularity``, ``cf.popularity_embeddings``, ...) so existing
code keeps working; new code should import from :mod:`complemjax.models`.
"""

from complemjax.models.ease import EASESelection, ease_score_fn, fit_ease, select_ease
from complemjax.models.mf import (
    BPR,
    BPRConfig,
    BPRHParams,
    BPRParams,
    BPRResult,
    BPRSelection,
    BPRState,
    bpr_init,
    bpr_train_epochs,
    fit_bpr,
    select_bpr,
)
from complemjax.models.popularity import popularity, popularity_embeddings

__all__ = [
    "BPR",
    "BPRConfig",
    "BPRHParams",
    "BPRParams",
    "BPRResult",
    "BPRSelection",
    "BPRState",
    "EASESelection",
    "bpr_init",
    "bpr_train_epochs",
    "ease_score_fn",
    "fit_bpr",
    "fit_ease",
    "popularity",
    "popularity_embeddings",
    "select_bpr",
    "select_ease",
]
