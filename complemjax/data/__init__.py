"""Interaction datasets: the :class:`Interactions` container, loaders, filters, splits."""

from complemjax.data.interactions import (
    Interactions,
    InteractionStats,
    from_frame,
    implicit,
    kcore,
    pad_item_sets,
    stats_table,
)
from complemjax.data.loaders import (
    AMAZON_SCHEMAS,
    load_amazon_reviews,
    load_movielens,
    load_recbole,
    load_table,
)
from complemjax.data.splits import (
    Split,
    cold_item_split,
    leave_one_out,
    random_split,
    temporal_split,
)

__all__ = [
    "AMAZON_SCHEMAS",
    "InteractionStats",
    "Interactions",
    "Split",
    "cold_item_split",
    "from_frame",
    "implicit",
    "kcore",
    "leave_one_out",
    "load_amazon_reviews",
    "load_movielens",
    "load_recbole",
    "load_table",
    "pad_item_sets",
    "random_split",
    "stats_table",
    "temporal_split",
]
