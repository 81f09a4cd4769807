"""Recommendation models, one file per family, trained and selected by one protocol.

- :mod:`complemjax.models.graph` — the normalised user–item graph and LightGCN propagation
  shared by the graph-based models.
"""

from complemjax.models.graph import Graph, build_graph, propagate

__all__ = ["Graph", "build_graph", "propagate"]
