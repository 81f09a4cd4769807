"""Tests for complemjax.data: container, loaders, filters, splits."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from complemjax.data import (
    Interactions,
    cold_item_split,
    from_frame,
    implicit,
    kcore,
    leave_one_out,
    load_amazon_reviews,
    load_movielens,
    load_recbole,
    load_table,
    padding,
    random_split,
    stats_table,
    temporal_split,
)


@pytest.fixture(scope="module")
def ml():
    return load_movielens()


def _toy(rng, n_users=30, n_items=40, n=400, with_time=True):
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    df = pd.DataFrame({"u": u * 10 + 7, "i": [f"item{k}" for k in i]})
    df["r"] = rng.integers(1, 6, n).astype(float)
    if with_time:
        df["t"] = rng.integers(0, 50, n)  # many ties on purpose
    return df


def _pairs(inter):
    return set(zip(inter.user_idx.tolist(), inter.item_idx.tolist()))


# ---------------------------------------------------------------- container
def test_movielens_real_package(ml):
    assert (ml.n_interactions, ml.n_users, ml.n_items) == (100_004, 671, 9_066)
    assert ml.report["duplicates_removed"] == 0
    info = ml.item_info
    assert list(info.columns[:4]) == ["item_id", "title", "year", "genres"]
    assert len(info) == 9_066
    toy = info.loc[info.item_id == 1].iloc[0]
    assert toy.title == "Toy Story" and toy.year == 1995 and "Animation" in toy.genres
    s = ml.stats()
    assert s["users"] == 671 and s["items"] == 9_066 and s["interactions"] == 100_004
    np.testing.assert_allclose(s["density"], 100_004 / (671 * 9_066))
    assert ml.ratings.dtype == np.float32 and ml.timestamps.dtype == np.int64
    assert ml.user_idx.dtype == np.int32 and ml.item_idx.dtype == np.int32
    table = stats_table(ml)
    assert "| movielens | 671 | 9,066 | 100,004 |" in table


def test_index_maps_and_views(rng):
    df = _toy(rng)
    inter = from_frame(df, user_col="u", item_col="i", rating_col="r", time_col="t")
    assert np.all(np.diff(inter.user_ids.astype(np.int64)) > 0)  # sorted ids
    back = inter.to_frame()
    # every kept pair maps back to an original row with the same rating at the latest time
    last = df.sort_values("t", kind="stable").drop_duplicates(["u", "i"], keep="last")
    merged = back.merge(last, left_on=["user_id", "item_id"], right_on=["u", "i"])
    assert len(merged) == len(back) == len(last)
    np.testing.assert_array_equal(merged.rating.to_numpy(), merged.r.to_numpy())
    np.testing.assert_array_equal(merged.timestamp.to_numpy(), merged.t.to_numpy())
    np.testing.assert_array_equal(inter.user_index(inter.user_ids[[3, 1]]), [3, 1])
    with pytest.raises(ValueError, match="ids"):
        inter.item_index(["nope"])
    csr = inter.to_csr()
    assert csr.shape == (inter.n_users, inter.n_items) and csr.nnz == inter.n_interactions
    dense = csr.toarray()
    assert dense[inter.user_idx, inter.item_idx].sum() == inter.n_interactions
    padded = inter.padded_item_sets()
    ref = padding.pad_item_sets(inter.user_idx, inter.item_idx, inter.n_users)
    np.testing.assert_array_equal(padded, np.asarray(ref))
    for u in range(inter.n_users):
        row = padded[u][padded[u] >= 0]
        np.testing.assert_array_equal(row, np.flatnonzero(dense[u]))


def test_duplicates_and_missing_ids_are_counted():
    df = pd.DataFrame(
        {
            "u": [1, 1, 1, 2, None, 2],
            "i": [5, 5, 6, 5, 5, None],
            "r": [1.0, 4.0, 3.0, 2.0, 5.0, 1.0],
            "t": [10, 20, 5, 1, 1, 1],
        }
    )
    inter = from_frame(df, user_col="u", item_col="i", rating_col="r", time_col="t")
    assert inter.report["duplicates_removed"] == 1
    assert inter.report["missing_id_rows_removed"] == 2
    assert inter.report["rows_read"] == 6
    assert inter.n_interactions == 3
    # the later duplicate (t=20, rating 4) is kept
    f = inter.to_frame()
    assert f.loc[(f.user_id == 1) & (f.item_id == 5), "rating"].item() == 4.0
    first = from_frame(df, user_col="u", item_col="i", rating_col="r", time_col="t", keep="first")
    g = first.to_frame()
    assert g.loc[(g.user_id == 1) & (g.item_id == 5), "rating"].item() == 1.0


def test_from_frame_bad_input():
    df = pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": [1.0, "x"]})
    with pytest.raises(ValueError, match="user_col"):
        from_frame(df, user_col="user", item_col="i")
    with pytest.raises(ValueError, match="rating_col"):
        from_frame(df, user_col="u", item_col="i", rating_col="r")
    with pytest.raises(ValueError, match="keep"):
        from_frame(df, user_col="u", item_col="i", keep="any")


def _naive_kcore(pairs, uk, ik):
    pairs = set(pairs)
    while True:
        uc, ic = {}, {}
        for u, i in pairs:
            uc[u] = uc.get(u, 0) + 1
            ic[i] = ic.get(i, 0) + 1
        bad = {(u, i) for u, i in pairs if uc[u] < uk or ic[i] < ik}
        if not bad:
            return pairs
        pairs -= bad


def test_kcore_matches_naive_fixed_point(rng):
    inter = from_frame(_toy(rng, n=600), user_col="u", item_col="i")
    core = kcore(inter, user_k=13, item_k=7)
    ref = _naive_kcore(
        zip(inter.user_ids[inter.user_idx].tolist(), inter.item_ids[inter.item_idx].tolist()),
        13,
        7,
    )
    got = set(zip(core.user_ids[core.user_idx].tolist(), core.item_ids[core.item_idx].tolist()))
    assert got == ref and len(got) > 0
    assert 0 < len(ref) < inter.n_interactions
    assert core.user_counts().min() >= 13 and core.item_counts().min() >= 7
    assert core.report["kcore_interactions_removed"] == inter.n_interactions - len(ref)
    assert core.n_users == len({u for u, _ in ref})
    with pytest.raises(ValueError, match="user_k"):
        kcore(inter, user_k=0)


def test_implicit_threshold_counts(ml):
    imp = implicit(ml, threshold=4.0)
    assert imp.n_interactions == int((ml.ratings >= 4).sum()) == 51_568
    assert imp.report["below_threshold_removed"] == 100_004 - 51_568
    assert imp.report["compact_items_removed"] == ml.n_items - imp.n_items
    assert len(imp.item_info) == imp.n_items
    # item metadata follows the re-indexing
    np.testing.assert_array_equal(imp.item_info.item_id.to_numpy(), imp.item_ids)
    no_r = from_frame(pd.DataFrame({"u": [1], "i": [2]}), user_col="u", item_col="i")
    with pytest.raises(ValueError, match="ratings"):
        implicit(no_r, threshold=1)


# ---------------------------------------------------------------- loaders
def test_recbole_loader(tmp_path):
    inter = tmp_path / "toy.inter"
    inter.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t4\t100\nu1\ti2\t3\t101\nu2\ti1\t5\t99\nu2\ti1\t2\t120\n"
    )
    item = tmp_path / "toy.item"
    item.write_text("item_id:token\ttitle:token_seq\tgenre:token_seq\ni1\tA Film\tx y\n")
    d = load_recbole(inter, item)
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.report["duplicates_removed"] == 1
    assert d.report["items_without_info"] == 1
    f = d.to_frame()
    assert f.loc[(f.user_id == "u2") & (f.item_id == "i1"), "rating"].item() == 2.0
    assert d.item_info.title.tolist()[0] == "A Film"
    assert d.name == "toy"

    bad = tmp_path / "bad.inter"
    bad.write_text("user_id:token\titem_id:token\trating:float\nu1\ti1\t4\nu2\ti2\tfour\n")
    with pytest.raises(ValueError, match=r"bad\.inter:3"):
        load_recbole(bad)
    bad2 = tmp_path / "bad2.inter"
    bad2.write_text("user_id:token\titem_id:token\nu1\ti1\nu2\ti2\textra\n")
    with pytest.raises(ValueError, match=r"bad2\.inter.*line 3"):
        load_recbole(bad2)
    bad3 = tmp_path / "bad3.inter"
    bad3.write_text("user_id\titem_id:token\nu1\ti1\n")
    with pytest.raises(ValueError, match=r"bad3\.inter:1"):
        load_recbole(bad3)


def _write_jsonl(path, records, gz=False):
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def test_amazon_2018_and_2023(tmp_path):
    r18 = [
        {"reviewerID": "A", "asin": "X", "overall": 5.0, "unixReviewTime": 1500000000},
        {"reviewerID": "A", "asin": "Y", "overall": 3.0, "unixReviewTime": 1500000100},
        {"reviewerID": "B", "asin": "X", "overall": 4.0, "unixReviewTime": 1500000200},
    ]
    p18 = tmp_path / "Toys_2018.json.gz"
    _write_jsonl(p18, r18, gz=True)
    m18 = tmp_path / "meta18.json"
    _write_jsonl(m18, [{"asin": "X", "title": "Robot", "category": ["Toys", "Robots"]}])
    d = load_amazon_reviews(p18, m18)
    assert d.report["amazon_schema"] == "2018"
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.timestamps.min() == 1500000000
    assert d.item_info.set_index("item_id").loc["X", "categories"] == "Toys|Robots"
    assert d.report["items_without_info"] == 1

    r23 = [
        {"user_id": "U1", "parent_asin": "P1", "rating": 5.0, "timestamp": 1600000000123},
        {"user_id": "U2", "parent_asin": "P1", "rating": 2.0, "timestamp": 1600000001000},
        {"user_id": "U2", "parent_asin": "P1", "rating": 4.0, "timestamp": 1600000002000},
    ]
    p23 = tmp_path / "All_Beauty.jsonl"
    _write_jsonl(p23, r23)
    m23 = tmp_path / "meta23.jsonl"
    _write_jsonl(
        m23,
        [{"parent_asin": "P1", "title": "Cream", "categories": [], "main_category": "Beauty"}],
    )
    d = load_amazon_reviews(p23, m23)
    assert d.report["amazon_schema"] == "2023"
    assert d.n_interactions == 2 and d.report["duplicates_removed"] == 1
    assert d.timestamps.min() == 1600000000  # milliseconds -> seconds
    assert d.ratings[d.user_ids[d.user_idx] == "U2"].item() == 4.0  # latest kept
    assert d.item_info.title.item() == "Cream"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(r23[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_amazon_reviews(bad)
    miss = tmp_path / "miss.jsonl"
    miss.write_text(json.dumps(r23[0]) + "\n" + json.dumps({"user_id": "a", "parent_asin": "b"}))
    with pytest.raises(ValueError, match=r"miss\.jsonl:2.*missing"):
        load_amazon_reviews(miss)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(ValueError, match=r"other\.jsonl:1"):
        load_amazon_reviews(other)


def test_csv_and_parquet(tmp_path, rng):
    df = _toy(rng, n=50)
    p = tmp_path / "inter.csv"
    df.to_csv(p, index=False)
    d = load_table(p, user_col="u", item_col="i", rating_col="r", time_col="t")
    # Ids are read as text: the reference is the same frame with string ids.
    text = df.astype({"u": str, "i": str})
    ref = from_frame(text, user_col="u", item_col="i", rating_col="r", time_col="t")
    np.testing.assert_array_equal(d.user_ids, ref.user_ids)
    np.testing.assert_array_equal(d.user_idx, ref.user_idx)
    np.testing.assert_array_equal(d.item_idx, ref.item_idx)
    np.testing.assert_array_equal(d.ratings, ref.ratings)
    pq = tmp_path / "inter.parquet"
    df.to_parquet(pq)  # integer ids in Parquet: same text ids, same id maps as the CSV
    d2 = load_table(pq, user_col="u", item_col="i", rating_col="r", time_col="t")
    np.testing.assert_array_equal(d2.item_ids, ref.item_ids)
    np.testing.assert_array_equal(d2.item_idx, ref.item_idx)
    assert d2.report["duplicates_removed"] == ref.report["duplicates_removed"]
    # ids_as="native" keeps the file's integer ids (sorted numerically).
    native = from_frame(df, user_col="u", item_col="i", rating_col="r", time_col="t")
    d3 = load_table(p, user_col="u", item_col="i", rating_col="r", time_col="t", ids_as="native")
    np.testing.assert_array_equal(d3.item_ids, native.item_ids)
    np.testing.assert_array_equal(d3.item_idx, native.item_idx)

    bad = tmp_path / "bad.csv"
    bad.write_text("u,i,r\n1,2,3\n1,3,x\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        load_table(bad, user_col="u", item_col="i", rating_col="r")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("u,i\n1,2\n1,3,4,5\n")
    with pytest.raises(ValueError, match=r"ragged\.csv.*line 3"):
        load_table(ragged, user_col="u", item_col="i")
    with pytest.raises(ValueError, match="item_col"):
        load_table(p, user_col="u", item_col="nope")
    with pytest.raises(ValueError, match="not found"):
        load_table(tmp_path / "absent.csv", user_col="u", item_col="i")


def test_ids_are_text_and_survive(tmp_path):
    """``007`` and ``7`` are two items; leading zeros are kept; item_info matches by text."""
    p = tmp_path / "ids.csv"
    p.write_text("user_id,item_id\n0001,007\n0001,7\n2,10\n")
    info = pd.DataFrame({"item_id": ["007", "7", "10"], "title": ["a", "b", "c"]})
    d = load_table(p, user_col="user_id", item_col="item_id", item_info=info)
    assert list(d.item_ids) == ["007", "10", "7"] and list(d.user_ids) == ["0001", "2"]
    assert list(d.item_info["title"]) == ["a", "c", "b"]
    assert d.report["items_without_info"] == 0
    # "NA" is an id like any other; only an empty field is a missing id.
    p.write_text("user_id,item_id\nNA,1\n,2\n")
    d = load_table(p, user_col="user_id", item_col="item_id")
    assert list(d.user_ids) == ["NA"] and d.report["missing_id_rows_removed"] == 1


def test_time_column_parses_iso_dates_or_says_what_it_accepts(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("u,i,t\na,x,2024-03-01T12:00:00Z\na,y,2024-03-01T13:00:00+01:00\nb,x,2024-03-02\n")
    d = load_table(p, user_col="u", item_col="i", time_col="t")
    expect = [1709294400, 1709294400, 1709337600]  # 2024-03-01 12:00 UTC twice, 03-02 00:00
    assert sorted(d.timestamps.tolist()) == expect
    frame = pd.DataFrame({"u": ["a"], "i": ["x"], "t": ["2024-03-01"]})
    inter = from_frame(frame, user_col="u", item_col="i", time_col="t")
    assert inter.timestamps[0] == 1709251200  # 2024-03-01 00:00 UTC
    p.write_text("u,i,t\na,x,soon\n")
    with pytest.raises(ValueError, match=r"t\.csv:2.*ISO 8601"):
        load_table(p, user_col="u", item_col="i", time_col="t")


def test_empty_files_and_float_indices_are_refused(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("user_id,item_id\n")
    with pytest.raises(ValueError, match="no interactions"):
        load_table(p, user_col="user_id", item_col="item_id")
    p.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_table(p, user_col="user_id", item_col="item_id")
    with pytest.raises(ValueError, match=r"`user_idx`.*integer"):
        Interactions(np.array([0.5]), np.array([0]), np.array(["u"]), np.array(["i"]))


# ---------------------------------------------------------------- splits
def _check_partition(inter, split):
    assert len(split.train) + len(split.valid) + len(split.test) == inter.n_interactions
    all_pairs = _pairs(split.train) | _pairs(split.valid) | _pairs(split.test)
    assert all_pairs == _pairs(inter)
    assert not (_pairs(split.test) & _pairs(split.train))
    assert not (_pairs(split.valid) & _pairs(split.train))
    assert not (_pairs(split.valid) & _pairs(split.test))
    for part in split[:3]:
        assert part.n_users == inter.n_users and part.n_items == inter.n_items


def test_leave_one_out(rng):
    inter = from_frame(_toy(rng), user_col="u", item_col="i", time_col="t")
    s = leave_one_out(inter, seed=3)
    _check_partition(inter, s)
    counts = inter.user_counts()
    eligible = counts >= 3
    assert s.info["users_too_short"] == int(((counts > 0) & ~eligible).sum())
    np.testing.assert_array_equal(np.bincount(s.test.user_idx, minlength=inter.n_users), eligible)
    np.testing.assert_array_equal(np.bincount(s.valid.user_idx, minlength=inter.n_users), eligible)
    # test is a latest interaction, valid is not after test, train not after valid
    for u in np.flatnonzero(eligible):
        t_test = s.test.timestamps[s.test.user_idx == u].item()
        t_val = s.valid.timestamps[s.valid.user_idx == u].item()
        t_tr = s.train.timestamps[s.train.user_idx == u]
        assert t_test == inter.timestamps[inter.user_idx == u].max()
        assert t_val <= t_test and np.all(t_tr <= t_val)
    s2 = leave_one_out(inter, seed=3)
    assert _pairs(s2.test) == _pairs(s.test) and _pairs(s2.valid) == _pairs(s.valid)
    # ties are broken by the seed: some seed gives a different test set
    assert any(_pairs(leave_one_out(inter, seed=k).test) != _pairs(s.test) for k in range(5))
    no_t = from_frame(_toy(rng, with_time=False), user_col="u", item_col="i")
    with pytest.raises(ValueError, match="timestamps"):
        leave_one_out(no_t, seed=0)
    with pytest.raises(ValueError, match="seed"):
        leave_one_out(inter, seed=None)


def test_temporal_split(rng):
    inter = from_frame(_toy(rng, n=800), user_col="u", item_col="i", time_col="t")
    s = temporal_split(inter, valid_frac=0.1, test_frac=0.2)
    _check_partition(inter, s)
    assert s.train.timestamps.max() < s.valid.timestamps.min()
    assert s.valid.timestamps.max() < s.test.timestamps.min()
    assert abs(len(s.test) / inter.n_interactions - 0.2) < 0.05
    no_t = from_frame(_toy(rng, with_time=False), user_col="u", item_col="i")
    with pytest.raises(ValueError, match="timestamps"):
        temporal_split(no_t)
    with pytest.raises(ValueError, match="test_frac"):
        temporal_split(inter, test_frac=1.5)


def test_random_split(ml):
    s = random_split(ml, seed=0, test_frac=0.2, valid_frac=0.1)
    _check_partition(ml, s)
    counts = ml.user_counts()
    n_test = np.bincount(s.test.user_idx, minlength=ml.n_users)
    np.testing.assert_array_equal(n_test, np.floor(0.2 * counts + 0.5))
    assert abs(len(s.valid) / len(ml) - 0.1) < 0.01
    s_same = random_split(ml, seed=0, test_frac=0.2, valid_frac=0.1)
    np.testing.assert_array_equal(s_same.test.item_idx, s.test.item_idx)
    s_other = random_split(ml, seed=1, test_frac=0.2, valid_frac=0.1)
    assert _pairs(s_other.test) != _pairs(s.test)


def test_cold_item_split(ml):
    s = cold_item_split(ml, seed=0, test_frac=0.2, valid_frac=0.1)
    _check_partition(ml, s)
    train_items = set(s.train.item_idx.tolist())
    assert not (set(s.test.item_idx.tolist()) & train_items)
    assert not (set(s.valid.item_idx.tolist()) & train_items)
    assert set(s.test.item_idx.tolist()) == set(s.info["test_items"].tolist())
    assert len(s.info["test_items"]) == round(0.2 * ml.n_items)
    s2 = cold_item_split(ml, seed=0, test_frac=0.2, valid_frac=0.1)
    np.testing.assert_array_equal(s2.info["test_items"], s.info["test_items"])
    with pytest.raises(ValueError, match="test_frac"):
        cold_item_split(ml, seed=0, test_frac=0.0)


def test_split_exclude_sets(ml):
    s = leave_one_out(ml, seed=0)
    ex = s.exclude_for_test()
    assert ex.shape[0] == ml.n_users
    tr_val = _pairs(s.train) | _pairs(s.valid)
    got = {(u, int(i)) for u in range(ml.n_users) for i in ex[u] if i >= 0}
    assert got == tr_val
    assert isinstance(s.train, Interactions)
