"""Recommendation models, one file per family, trained and selected by one protocol.

- :mod:`complemjax.models.graph` — the normalised user–item graph and LightGCN propagation
  shared by the graph-based models.
- :mod:`complemjax.models.protocol` — :class:`TrainData`, the :class:`ModelFamily`
  interface, :func:`select` (vmapped grid, validation Recall@20, early stopping) and
  :func:`retrain` (one configuration on another seed).
- :mod:`complemjax.models.lightgcn` — LightGCN (He et al. 2020).
"""

from complemjax.models.graph import Graph, build_graph, propagate, propagate_mean
from complemjax.models.lightgcn import LightGCN, LightGCNHParams
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
    "Fitted",
    "Graph",
    "LightGCN",
    "LightGCNHParams",
    "ModelFamily",
    "Selection",
    "TrainData",
    "build_graph",
    "make_train_data",
    "propagate",
    "propagate_mean",
    "retrain",
    "select",
    "stack_hparams",
]
