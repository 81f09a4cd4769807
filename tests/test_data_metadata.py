"""Tests for complemjax.data.metadata: title normalisation and the MovieLens-IMDB join."""

import numpy as np
import pandas as pd
import pytest

from complemjax import semantic
from complemjax.data import load_movielens
from complemjax.data import metadata as md


@pytest.mark.parametrize(
    ("title", "key"),
    [
        ("Matrix, The", "the matrix"),
        ("Léon: The Professional", "leon the professional"),
        ("Dumb & Dumber", "dumb and dumber"),
        ("Postino, Il", "il postino"),
        ("Amant, L'", "lamant"),
        ("Schindler's List", "schindlers list"),
        ("  Star Wars:  Episode IV - A New Hope ", "star wars episode iv a new hope"),
    ],
)
def test_normalize_title(title, key):
    assert md.normalize_title(title) == key


def test_title_keys_include_alternatives():
    assert md.title_keys("Seven (a.k.a. Se7en)") == ["seven", "se7en"]
    assert md.title_keys("Postman, The (Postino, Il)") == ["the postman", "il postino"]
    assert md.title_keys("Matrix, The") == ["the matrix"]
    with pytest.raises(ValueError, match="title"):
        md.title_keys(None)


def test_join_on_small_tables_ambiguity_and_tolerance():
    imdb = pd.DataFrame(
        {
            "title": ["Matrix, The", "Heat", "Heat", "Crash", "Se7en"],
            "year": [1999, 1995, 1995, 1996, 1995],
        }
    )
    items = pd.DataFrame(
        {
            "title": ["Matrix, The", "Heat", "Crash", "Seven (a.k.a. Se7en)", None, "Matrix, The"],
            "year": [1999, 1995, 1997, 1995, 1999, np.nan],
        }
    )
    j = md.join_imdb(items, imdb)
    np.testing.assert_array_equal(j.imdb_row, [0, -1, -1, 4, -1, -1])
    assert j.n_ambiguous == 1  # two "Heat (1995)" rows: not matched
    j1 = md.join_imdb(items, imdb, year_tolerance=1)
    np.testing.assert_array_equal(j1.imdb_row, [0, -1, 3, 4, -1, -1])
    rates = md.match_rate_by_year(items, j1)
    assert rates.iloc[-1].to_dict() == {
        "years": "all", "n_items": 6, "n_matched": 3, "match_rate": 0.5
    }  # fmt: skip
    with pytest.raises(ValueError, match="year_tolerance"):
        md.join_imdb(items, imdb, year_tolerance=-1)


@pytest.fixture(scope="module")
def ml_join():
    ml = load_movielens()
    imdb = md.load_imdb_movies()
    return ml, imdb, md.join_imdb(ml.item_info, imdb)


# hand-checked: MovieLens title -> IMDB (ggplot2movies) title, year
HAND_CHECKED = {
    "Matrix, The": ("Matrix, The", 1999),
    "Seven (a.k.a. Se7en)": ("Se7en", 1995),
    "Postman, The (Postino, Il)": ("Postino, Il", 1994),
    "Toy Story": ("Toy Story", 1995),
    "Dumb & Dumber (Dumb and Dumber)": ("Dumb & Dumber", 1994),
    "Usual Suspects, The": ("Usual Suspects, The", 1995),
    "Star Wars: Episode IV - A New Hope": ("Star Wars", 1977),
}


def test_movielens_join_hand_checked_sample(ml_join):
    ml, imdb, j = ml_join
    info = ml.item_info.reset_index(drop=True)
    for ml_title, (imdb_title, year) in HAND_CHECKED.items():
        rows = np.flatnonzero(info["title"].to_numpy() == ml_title)
        assert rows.size == 1, ml_title
        r = j.imdb_row[rows[0]]
        if ml_title.startswith("Star Wars"):
            # IMDB lists it as "Star Wars" (1977): the subtitle differs, no key matches
            assert r == -1
            continue
        assert r >= 0, ml_title
        assert (imdb.loc[r, "title"], int(imdb.loc[r, "year"])) == (imdb_title, year)
    # IMDB stops at 2005: nothing later matches
    years = info["year"].to_numpy()
    assert not j.matched[years >= 2006].any()
    rate = j.matched[years <= 2004].mean()
    assert 0.8 < rate < 0.95, rate


def test_imdb_item_info_and_text_templates(ml_join):
    ml, imdb, j = ml_join
    info = md.imdb_item_info(ml.item_info, j, imdb)
    k = int(np.flatnonzero(ml.item_info["title"].to_numpy() == "Matrix, The")[0])
    row = info.iloc[k]
    assert row["runtime"] == 136 and row["mpaa"] == "R" and row["imdb_votes"] > 1e5
    assert row["imdb_genres"] == "|".join(
        g for g in md.IMDB_GENRES if imdb.loc[j.imdb_row[k], g] == 1
    )
    text = semantic.item_text_imdb(row)
    assert "Runtime: 136 min" in text and "Rated R" in text and "IMDb" not in text
    assert "IMDb rating 8.5" in semantic.item_text_imdb(row, include_ratings=True)
    unmatched = info.iloc[int(np.flatnonzero(~j.matched)[0])]
    assert np.isnan(unmatched["runtime"]) and pd.isna(unmatched["mpaa"])
    assert semantic.item_text_imdb(unmatched) == semantic.item_text(unmatched)
