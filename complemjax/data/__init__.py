"""Interaction datasets: container, loaders, filters, splits and padded per-user arrays.

The :class:`Interactions` container, its loaders, filters and splits, and the padded per-user
item arrays every ranking function consumes.
"""

from complemjax.data.interactions import (
    Interactions,
    InteractionStats,
    from_frame,
    implicit,
    kcore,
    stats_table,
)
from complemjax.data.loaders import (
    AMAZON_SCHEMAS,
    load_amazon_reviews,
    load_movielens,
    load_recbole,
    load_table,
)
from complemjax.data.metadata import (
    IMDB_GENRES,
    ImdbJoin,
    imdb_item_info,
    join_imdb,
    load_imdb_movies,
    match_rate_by_year,
    normalize_title,
    title_keys,
)
from complemjax.data.padding import pad_item_lists, pad_item_sets
from complemjax.data.splits import (
    Split,
    cold_item_split,
    leave_one_out,
    random_split,
    temporal_split,
)

__all__ = [
    "AMAZON_SCHEMAS",
    "IMDB_GENRES",
    "ImdbJoin",
    "InteractionStats",
    "Interactions",
    "Split",
    "cold_item_split",
    "from_frame",
    "imdb_item_info",
    "implicit",
    "join_imdb",
    "kcore",
    "leave_one_out",
    "load_amazon_reviews",
    "load_imdb_movies",
    "load_movielens",
    "load_recbole",
    "load_table",
    "match_rate_by_year",
    "normalize_title",
    "pad_item_lists",
    "pad_item_sets",
    "random_split",
    "stats_table",
    "temporal_split",
    "title_keys",
]
