"""Tests for complemjax.trec: TREC run/qrels round trips, ordering, ranx interop, errors."""

import numpy as np
import pytest

from complemjax import complementarity, ranking, trec


@pytest.fixture
def ids():
    return np.array(["u1", "u2", "u3"], dtype=object), np.array(["007", "7", "a", "b", "c"])


def _write(path, text):
    path.write_text(text)
    return path


def test_run_round_trip_and_order(tmp_path, ids):
    users, items = ids
    top = np.array([[1, 0, 4], [2, -1, -1], [3, 4, 0]], dtype=np.int32)
    scores = np.array([[3.0, 2.0, 1.0], [5.0, 0, 0], [0.5, 0.5, 0.1]])
    run = trec.topk_to_run(top, scores, user_ids=users, item_ids=items, tag="sys")
    path = trec.write_run(tmp_path / "a.run", run)
    back = trec.read_run(path)
    assert back.tag == "sys"
    got = trec.run_to_topk(back, user_ids=users, item_ids=items, k=3)
    # u3 has a score tie (0.5, 0.5): broken by the written rank, so the order survives
    np.testing.assert_array_equal(got, top)
    # "007" and "7" stay distinct items
    assert set(back.frame["item"]) >= {"007", "7"}


def test_read_run_sorts_by_score_then_rank(tmp_path, ids):
    users, items = ids
    p = _write(tmp_path / "r", "u1 Q0 a 2 0.9 t\nu1 Q0 b 1 0.9 t\nu1 Q0 c 3 1.5 t\n")
    top = trec.run_to_topk(trec.read_run(p), user_ids=users, item_ids=items, k=4)
    np.testing.assert_array_equal(top[0], [4, 3, 2, -1])  # c (1.5), then b (rank 1), a
    assert (top[1:] == -1).all()


def test_qrels_and_compare_rankers_from_files(tmp_path, ids):
    users, items = ids
    qp = _write(tmp_path / "q", "u1 0 007 1\nu1 0 c 1\nu2 0 a 0\nu2 0 b 2\nu3 0 7 1\n")
    test = trec.qrels_to_sets(trec.read_qrels(qp), user_ids=users, item_ids=items)
    np.testing.assert_array_equal(test, [[0, 4], [3, -1], [1, -1]])
    a = _write(tmp_path / "a", "u1 Q0 007 1 3 A\nu1 Q0 b 2 2 A\nu2 Q0 b 1 1 A\nu3 Q0 a 1 1 A\n")
    b = _write(tmp_path / "b", "u1 Q0 c 1 3 B\nu1 Q0 b 2 2 B\nu2 Q0 c 1 1 B\nu3 Q0 7 1 1 B\n")
    ta = trec.run_to_topk(trec.read_run(a), user_ids=users, item_ids=items, k=2)
    tb = trec.run_to_topk(trec.read_run(b), user_ids=users, item_ids=items, k=2)
    df = complementarity.compare_rankers(ta, tb, test, ks=(2,))
    row = df[(df.bucket_type == "all") & (df.metric == "recall_merge")]
    # union hits: u1 {007, c} of 2, u2 {b} of 1, u3 {7} of 1 -> merge recall 1 for all
    assert row["value"].item() == pytest.approx(1.0)
    ra = ranking.evaluate_topk(ta, test, ks=(2,)).mean("recall")[0]
    assert float(ra) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


@pytest.mark.slow
def test_ranx_interop(ids):
    ranx = pytest.importorskip("ranx")
    users, items = ids
    r = ranx.Run({"u1": {"a": 0.2, "b": 0.9}, "u2": {"c": 1.0}}, name="x")
    run = trec.from_ranx(r)
    top = trec.run_to_topk(run, user_ids=users, item_ids=items, k=2)
    np.testing.assert_array_equal(top, [[3, 2], [4, -1], [-1, -1]])
    back = trec.to_ranx(run)
    assert back.to_dict()["u1"] == pytest.approx({"a": 0.2, "b": 0.9})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("u1 Q0 a 1 0.5\n", "fields"),
        ("u1 Q0 a one 0.5 t\n", "numeric"),
        ("u1 Q0 a 1 nan t\n", "non-finite"),
        ("u1 Q0 a 1 0.5 t\nu1 Q0 a 2 0.4 t\n", "twice"),
        ("", "no entries"),
    ],
)
def test_bad_run_files(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        trec.read_run(_write(tmp_path / "r", text))


def test_unknown_ids_and_bad_args(tmp_path, ids):
    users, items = ids
    run = trec.read_run(_write(tmp_path / "r", "u9 Q0 a 1 1 t\n"))
    with pytest.raises(ValueError, match="user ids"):
        trec.run_to_topk(run, user_ids=users, item_ids=items, k=1)
    run = trec.read_run(_write(tmp_path / "r2", "u1 Q0 zz 1 1 t\n"))
    with pytest.raises(ValueError, match="item ids"):
        trec.run_to_topk(run, user_ids=users, item_ids=items, k=1)
    with pytest.raises(ValueError, match="`k`"):
        trec.run_to_topk(run, user_ids=users, item_ids=items, k=0)
    with pytest.raises(ValueError, match="no such file"):
        trec.read_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="`run`"):
        trec.run_to_topk([1, 2], user_ids=users, item_ids=items, k=1)
