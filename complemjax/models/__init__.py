"""Recommendation models, one file per family, trained and selected by one protocol.

- :mod:`complemjax.models.graph` — the normalised user–item graph and LightGCN propagation
  shared by the graph-based models.
- :mod:`complemjax.models.protocol` — :class:`TrainData`, the :class:`ModelFamily`
  interface, :func:`select` (vmapped grid, validation Recall@20, early stopping) and
  :func:`retrain` (one configuration on another seed).
- :mod:`complemjax.models.bpr` — the BPR objective (Rendle et al. 2009): positive lookup,
  the BPR-MF triple sampler and the loss, used by every BPR-trained model and fusion.
- :mod:`complemjax.models.lightgcn` — LightGCN (He et al. 2020).
- :mod:`complemjax.models.mf` — BPR matrix factorisation (fast row-wise training).
- :mod:`complemjax.models.ease` — EASE (Steck 2019) and its l2 selection.
- :mod:`complemjax.models.popularity` — the most-popular baseline.
- :mod:`complemjax.models.alpharec` — AlphaRec (Sheng et al. 2025).
- :mod:`complemjax.models.rlmrec` — RLMRec-Con (Ren et al. 2024) on the LightGCN backbone.
- :mod:`complemjax.models.contrastive` — InfoNCE over cosines and the LeakyReLU MLP shared
  by both.
"""

from complemjax.models.alpharec import AlphaRec, AlphaRecHParams, AlphaRecState
from complemjax.models.contrastive import info_nce
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
from complemjax.models.rlmrec import RLMRec, RLMRecHParams, RLMRecState, rlmrec_grid

__all__ = [
    "BPR",
    "AlphaRec",
    "AlphaRecHParams",
    "AlphaRecState",
    "BPRConfig",
    "BPRHParams",
    "EASESelection",
    "Fitted",
    "Graph",
    "LightGCN",
    "LightGCNHParams",
    "ModelFamily",
    "RLMRec",
    "RLMRecHParams",
    "RLMRecState",
    "Selection",
    "TrainData",
    "build_graph",
    "ease_score_fn",
    "fit_bpr",
    "fit_ease",
    "info_nce",
    "make_train_data",
    "popularity",
    "popularity_embeddings",
    "propagate",
    "propagate_mean",
    "retrain",
    "rlmrec_grid",
    "select",
    "select_bpr",
    "select_ease",
    "stack_hparams",
]
