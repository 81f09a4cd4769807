"""Recommendation models, one file per family, trained and selected by one protocol.

- :mod:`complemjax.models.graph` — the normalised user–item graph and LightGCN propagation
  shared by the graph-based models.
- :mod:`complemjax.models.protocol` — :class:`TrainData`, the :class:`ModelFamily`
  interface, :func:`select` (vmapped grid, validation Recall@20, early stopping) and
  :func:`retrain` (one configuration on another seed).
- :mod:`complemjax.models.lightgcn` — LightGCN (He et al. 2020).
- :mod:`complemjax.models.mf` — BPR matrix factorisation (fast row-wise training).
- :mod:`complemjax.models.ease` — EASE (Steck 2019) and its l2 selection.
- :mod:`complemjax.models.popularity` — the most-popular baseline.
"""

from complemjax.models.ease import EASESelection, ease_score_fn, fit_ease, select_ease
from complemjax.models.graph import Graph, build_graph, propagate, propagate_mean
from complemjax.models.lightgcn import LightGCN, LightGCNHParams
from complemjax.models.mf import BPR, BPRConfig, BPRHParams, fit_bpr, select_bpr
from complemjax.models.popularity import popularity, popularity_embeddings
from complemjax.models.protocol import (
    Fitted,
    ModelFamily,
    Selection,
    TrainData,
    make_train_data,
    retrain,
    select,
    stack_hparams,
)

__all__ = [
    "BPR",
    "BPRConfig",
    "BPRHParams",
    "EASESelection",
    "Fitted",
    "Graph",
    "LightGCN",
    "LightGCNHParams",
    "ModelFamily",
    "Selection",
    "TrainData",
    "build_graph",
    "ease_score_fn",
    "fit_bpr",
    "fit_ease",
    "make_train_data",
    "popularity",
    "popularity_embeddings",
    "propagate",
    "propagate_mean",
    "retrain",
    "select",
    "select_bpr",
    "select_ease",
    "stack_hparams",
]
