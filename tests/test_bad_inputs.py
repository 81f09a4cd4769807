"""A table of bad inputs across the API and the command line (issue 13).

Each case calls one public function (or ``complemjax <command>``) with one wrong input and
asserts the exception type and that the message names the argument. Command-line cases
assert the user-error contract instead: exit status 2 and one line on stderr starting
``complemjax: error:`` (raised here as :class:`CliError` carrying that line).

``kind`` records how the case behaved before issue 13 was fixed: ``clear`` (already a
ValueError naming the argument), ``obscure`` (an error from deep inside JAX / NumPy /
pandas, or a traceback on the command line) or ``silent`` (a wrong or misleading result).
Cases whose fix lives in files other helpers own are ``xfail(strict=True)`` until merged.

A few silent cases are about values, not errors (``007`` and ``7`` are two items; ISO
dates parse); their function returns normally and asserts the value itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import complemjax as cj
from complemjax import cli, config, data, sweep
from complemjax.fusion import rules


class CliError(Exception):
    """``complemjax ...`` exited 2 with one ``complemjax: error:`` line on stderr."""


class Case(NamedTuple):
    id: str
    fn: Callable[[Path], object]  # called with a folder of prepared files
    match: str | None  # regex the message must contain (None: must not raise)
    kind: str  # clear | obscure | silent (before the fix)
    exc: type[BaseException] = ValueError
    xfail: str | None = None  # branch that fixes it, for cases owned by other helpers


def _cli(*argv: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main([str(a) for a in argv])
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if rc == 2 and len(lines) == 1 and lines[0].startswith("complemjax: error: "):
        raise CliError(lines[0])
    raise AssertionError(f"expected exit 2 with one error line, got rc={rc}, stderr={text!r}")


# ---------------------------------------------------------------------------- inputs

I32 = np.int32
TOP = np.array([[0, 1, 2], [1, 2, 3]], I32)
TEST = np.array([[0, -1], [3, -1]], I32)
X = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
KEY = jax.random.key(0)


def _fn(key, noise):
    return {"v": jax.random.normal(key) * noise}


def _score_fn(users):
    return jnp.zeros((users.shape[0], 5))


def _rg(**kw):
    args = {"key": KEY, "grid": {"noise": [1.0]}, "progress": False}
    args.update(kw)
    return sweep.run_grid(_fn, **args)


def _inter(**kw):
    args = {
        "user_idx": np.array([0, 1], I32),
        "item_idx": np.array([0, 1], I32),
        "user_ids": np.array(["u0", "u1"]),
        "item_ids": np.array(["i0", "i1"]),
    }
    args.update(kw)
    return data.Interactions(**args)


def _small_inter():
    rows = [(f"u{u}", f"i{(u * 3 + j) % 9}") for u in range(6) for j in range(5)]
    return data.from_frame(pd.DataFrame(rows, columns=["u", "i"]), user_col="u", item_col="i")


def _cfg(tmp, body: str) -> Path:
    path = tmp / f"cfg{abs(hash(body))}.toml"
    out = tmp / "sweep_out"  # never the current folder, even if a case were not refused
    path.write_text(f'study = "synthetic_complementarity"\nout_dir = "{out}"\n' + body)
    return path


def _results(tmp, name: str, text: str, meta: bool = True) -> Path:
    out = tmp / name
    out.mkdir(exist_ok=True)
    (out / "synthetic_complementarity.csv").write_text(text)
    if meta:
        (out / "synthetic_complementarity.meta.json").write_text(json.dumps(SYN_META))
    return out


def _locked_folder(tmp) -> Path:
    ck = tmp / "locked"
    ck.mkdir(exist_ok=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "created_unix": 0}
    (ck / "sweep.lock").write_text(json.dumps(holder))  # our parent process is alive
    return ck


def _foreign_chunk(tmp) -> Path:
    a, b = tmp / "run_a", tmp / "run_b"
    if not a.exists():
        _rg(grid={"noise": [1.0, 2.0]}, checkpoint_dir=a, chunk_size=1)
        _rg(grid={"noise": [1.0, 2.0]}, checkpoint_dir=b, chunk_size=1, key=jax.random.key(1))
        name = "chunk-s0000-c000001.npz"
        (a / name).write_bytes((b / name).read_bytes())
    return a


def _ids_case(tmp):
    path = tmp / "ids.csv"
    path.write_text("user_id,item_id\nu1,007\nu1,7\nu2,10\n")
    inter = data.load_table(path, user_col="user_id", item_col="item_id")
    assert inter.n_items == 3 and "007" in list(inter.item_ids), inter.item_ids


def _csv_parquet_case(tmp):
    df = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["7", "8", "10"]})
    df.to_csv(tmp / "same.csv", index=False)  # the same text ids in both files
    df.to_parquet(tmp / "same.parquet")
    a = data.load_table(tmp / "same.csv", user_col="user_id", item_col="item_id")
    b = data.load_table(tmp / "same.parquet", user_col="user_id", item_col="item_id")
    assert list(a.item_ids) == list(b.item_ids) and list(a.user_ids) == list(b.user_ids)


def _iso_case(tmp):
    path = tmp / "iso.csv"
    path.write_text("user_id,item_id,ts\nu1,a,2024-03-01T12:00:00Z\nu1,b,2024-03-02\n")
    inter = data.load_table(path, user_col="user_id", item_col="item_id", time_col="ts")
    assert list(inter.timestamps) == [1709294400, 1709337600]


def _diag(tmp, *extra):
    return _cli("diagnose", tmp / "inter.csv", tmp / "a.npy", tmp / "b.npy",
                "--ids-a", tmp / "item_ids.txt", "--ids-b", tmp / "item_ids.txt",
                "--out", tmp / "diag_out", "--n-boot", "5", *extra)  # fmt: skip


_SYN_COLS = (
    "density,private_reliance,K,seed,recall_sem,recall_cf,oracle_merge_recall,overlap,"
    "unique_share_sem,unique_share_cf,oracle_merge_rel_gain\n"
)
# A complete table whose CF recall is missing in one run (the report's headline used to
# count that run as "semantic better").
SYN_NAN = _SYN_COLS + "".join(
    f"0.1,{pr},10,{s},0.2,{'' if (pr, s) == (0.1, 0) else 0.3},0.4,0.5,0.3,0.3,0.1\n"
    for pr in (0.1, 0.5)
    for s in (0, 1)
)
SYN_FULL = SYN_NAN.replace(",,", ",0.3,")
SYN_META = {"n_items": 3, "n_users": 4, "shared_fraction": 0.5, "nonlinearity": 0.0,
            "popularity_skew": 1.0, "n_seeds": 2, "seconds": 1.0}  # fmt: skip

CASES: list[Case] = [
    # --- ranking / complementarity: repeated items, keys, NaN buckets ---------------
    Case(
        "evaluate_topk-repeats",
        lambda t: cj.evaluate_topk(
            np.array([[3, 3, 3, 3, 3]], I32), np.array([[3, -1]], I32), ks=(5,)
        ),
        r"`topk_items`.*user\) 0 holds item 3",
        "silent",
    ),
    Case(
        "evaluate_topk-repeats-user1",
        lambda t: cj.evaluate_topk(np.array([[0, 1, 2], [4, -1, 4]], I32), TEST, ks=(3,)),
        r"`topk_items`.*user\) 1",
        "silent",
    ),
    Case(
        "compare_rankers-repeats-a",
        lambda t: cj.compare_rankers(np.array([[3, 3, 1], [1, 2, 3]], I32), TOP, TEST, ks=(3,)),
        "`topk_a`",
        "silent",
    ),
    Case(
        "compare_rankers-repeats-b",
        lambda t: cj.compare_rankers(TOP, np.array([[0, 1, 2], [2, 2, 2]], I32), TEST, ks=(3,)),
        "`topk_b`",
        "silent",
    ),
    Case(
        "pair_user_stats-repeats",
        lambda t: cj.pair_user_stats(
            np.array([[1, 1, 1]], I32), np.array([[0, 1, 2]], I32), np.array([[1]], I32), k=3
        ),
        "`items_a`",
        "silent",
    ),
    Case(
        "compare_rankers-nan-popularity",
        lambda t: cj.compare_rankers(
            TOP, TOP, TEST, ks=(3,), item_popularity=np.array([1.0, np.nan, 2, 3, 4])
        ),
        "`item_popularity`.*NaN",
        "silent",
    ),
    Case(
        "compare_rankers-nan-activity",
        lambda t: cj.compare_rankers(
            TOP, TOP, TEST, ks=(3,), user_activity=np.array([np.nan, 2.0])
        ),
        "`user_activity`.*NaN",
        "silent",
    ),
    Case(
        "compare_rankers-int-key",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), key=0, n_boot=5),
        "`key`",
        "obscure",
    ),
    Case(
        "compare_rankers-str-key",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), key="seed", n_boot=5),
        "`key`",
        "obscure",
    ),
    Case(
        "evaluate_topk-float-lists",
        lambda t: cj.evaluate_topk(TOP.astype(float), TEST, ks=(3,)),
        "`topk_items`",
        "clear",
    ),
    Case(
        "evaluate_topk-k-too-large", lambda t: cj.evaluate_topk(TOP, TEST, ks=(4,)), "`ks`", "clear"
    ),
    Case(
        "evaluate_topk-below-minus-one",
        lambda t: cj.evaluate_topk(np.array([[0, -2, 1], [1, 2, 3]], I32), TEST, ks=(3,)),
        "`topk_items`",
        "clear",
    ),
    Case(
        "evaluate_topk-test-rows",
        lambda t: cj.evaluate_topk(TOP, TEST[:1], ks=(3,)),
        "`test`",
        "clear",
    ),
    Case(
        "compare_rankers-n_boot",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), n_boot=0),
        "`n_boot`",
        "clear",
    ),
    Case(
        "compare_rankers-head_fraction",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), head_fraction=1.5),
        "`head_fraction`",
        "clear",
    ),
    Case(
        "compare_rankers-confidence",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), confidence=0.0),
        "`confidence`",
        "clear",
    ),
    Case(
        "compare_rankers-rows",
        lambda t: cj.compare_rankers(TOP, TOP[:1], TEST, ks=(3,)),
        "`topk_b`",
        "clear",
    ),
    Case(
        "compare_rankers-short-popularity",
        lambda t: cj.compare_rankers(TOP, TOP, TEST, ks=(3,), item_popularity=np.ones(2)),
        "`item_popularity`",
        "clear",
    ),
    # --- probes ---------------------------------------------------------------------
    Case(
        "fit-mlp-key-none",
        lambda t: cj.probes.fit(None, cj.MLP(width=4, steps=2), X, Y),
        "`key`",
        "obscure",
    ),
    Case(
        "fit-mlp-key-int",
        lambda t: cj.probes.fit(0, cj.MLP(width=4, steps=2), X, Y),
        "`key`",
        "obscure",
    ),
    Case("fit-int-x", lambda t: cj.probes.fit(KEY, cj.Ridge(), X.astype(int), Y), "`x`", "clear"),
    Case("fit-rows", lambda t: cj.probes.fit(KEY, cj.Ridge(), X, Y[:5]), "`y`", "clear"),
    Case(
        "fit-nan-x",
        lambda t: cj.probes.fit(KEY, cj.Ridge(), np.where(X > 1, np.nan, X), Y),
        "`x`",
        "clear",
    ),
    Case(
        "ProbeHParams-l2",
        lambda t: cj.probes.fit(KEY, cj.Ridge(), X, Y, cj.ProbeHParams(l2=-1.0)),
        "`l2`",
        "clear",
    ),
    # --- similarity -----------------------------------------------------------------
    Case(
        "mutual_knn-collapsed",
        lambda t: cj.mutual_knn(np.ones((12, 4), np.float32), Y, k=3),
        "`X` is collapsed",
        "silent",
    ),
    Case(
        "mutual_knn-all-zero",
        lambda t: cj.mutual_knn(X, np.zeros((12, 3), np.float32), k=3),
        "`Y` is collapsed",
        "silent",
    ),
    Case("mutual_knn-k", lambda t: cj.mutual_knn(X, Y, k=12), "`k`", "clear"),
    Case("mutual_knn-rows", lambda t: cj.mutual_knn(X, Y[:5], k=2), "`Y`", "clear"),
    Case(
        "linear_cka-nan",
        lambda t: cj.linear_cka(np.full((12, 4), np.nan, np.float32), Y),
        "`X`",
        "clear",
    ),
    Case("svcca-dims", lambda t: cj.svcca(X, Y, dims=9), "`dims`", "clear"),
    Case("cknna-int", lambda t: cj.cknna(X.astype(int), Y, k=3), "`X`", "clear"),
    Case(
        "topk_from_embeddings-k",
        lambda t: cj.topk_from_embeddings(X, X, k=0),
        "`k`",
        "clear",
    ),
    # --- fusion ---------------------------------------------------------------------
    Case(
        "fuse_scores-config-none",
        lambda t: rules.fuse_scores(np.zeros((2, 3)), np.zeros((2, 3)), config=None),
        "`config`",
        "obscure",
    ),
    Case(
        "fuse_scores-shapes",
        lambda t: rules.fuse_scores(np.zeros((2, 3)), np.zeros((2, 4)), config=rules.RuleConfig()),
        "`scores_b`",
        "clear",
    ),
    Case(
        "fuse_scores-weight",
        lambda t: rules.fuse_scores(
            np.zeros((2, 3)),
            np.zeros((2, 3)),
            rules.RuleHParams(weight=2.0),
            config=rules.RuleConfig(),
        ),
        "`weight`",
        "clear",
    ),
    Case("RuleConfig-method", lambda t: rules.RuleConfig(method="mean"), "`method`", "clear"),
    Case("RuleConfig-depth", lambda t: rules.RuleConfig(depth=0), "`depth`", "clear"),
    Case("rule_grid-empty-weights", lambda t: rules.rule_grid(weights=[]), "`weights`", "silent"),
    Case("rule_grid-empty-rrf", lambda t: rules.rule_grid(rrf_ks=[]), "`rrf_ks`", "silent"),
    Case("rule_grid-weight-range", lambda t: rules.rule_grid(weights=[1.5]), "`weights`", "clear"),
    Case(
        "tune_rule-empty-grid",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.RuleHParams(weight=jnp.zeros(0), rrf_k=jnp.zeros(0)),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1], [2]], I32),
            n_items=5,
            k=2,
        ),
        "`grid`",
        "obscure",
    ),
    Case(
        "tune_rule-missing-rows",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1], [2]], I32),
            n_items=5,
            k=2,
            n_users=3,
        ),
        "`valid_padded`",
        "silent",
    ),
    Case(
        "tune_rule-rows-vs-exclude",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1], [2]], I32),
            exclude=np.zeros((3, 1), I32),
            n_items=5,
            k=2,
        ),
        "`valid_padded` has 2 rows",
        "obscure",
    ),
    Case(
        "tune_rule-item-range",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1], [9]], I32),
            n_items=5,
            k=2,
        ),
        "`valid_padded`",
        "silent",
    ),
    Case(
        "tune_rule-config-none",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=None,
            valid_padded=np.array([[1], [2]], I32),
            n_items=5,
            k=2,
        ),
        "`config`",
        "obscure",
    ),
    Case(
        "tune_rule-metric",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1]], I32),
            n_items=5,
            metric="map",
        ),
        "`metric`",
        "clear",
    ),
    Case(
        "tune_rule-k",
        lambda t: rules.tune_rule(
            _score_fn,
            _score_fn,
            rules.rule_grid(),
            config=rules.RuleConfig(),
            valid_padded=np.array([[1]], I32),
            n_items=5,
            k=6,
        ),
        "`k`",
        "clear",
    ),
    Case(
        "fuse_score_fns-config-none",
        lambda t: rules.fuse_score_fns(_score_fn, _score_fn, config=None, n_items=5),
        "`config`",
        "silent",
    ),
    Case(
        "fuse_runs-config-none",
        lambda t: rules.fuse_runs(TOP, np.zeros((2, 3)), TOP, np.zeros((2, 3)), config=None, k=2),
        "`config`",
        "obscure",
    ),
    # --- data -----------------------------------------------------------------------
    Case("load_table-numeric-ids-merged", _ids_case, None, "silent"),
    Case("load_table-csv-parquet-same-ids", _csv_parquet_case, None, "silent"),
    Case("load_table-iso-dates", _iso_case, None, "obscure"),
    Case(
        "load_table-header-only",
        lambda t: data.load_table(t / "header.csv", user_col="user_id", item_col="item_id"),
        "`path`.*no interactions",
        "silent",
    ),
    Case(
        "load_table-empty-file",
        lambda t: data.load_table(t / "empty.csv", user_col="user_id", item_col="item_id"),
        "empty.csv",
        "clear",
    ),
    Case(
        "load_table-missing-file",
        lambda t: data.load_table(t / "nope.csv", user_col="user_id", item_col="item_id"),
        "nope.csv",
        "clear",
    ),
    Case(
        "load_table-user_col",
        lambda t: data.load_table(t / "inter.csv", user_col="user", item_col="item_id"),
        "`user_col`",
        "clear",
    ),
    Case(
        "load_table-rating",
        lambda t: data.load_table(
            t / "rated.csv", user_col="user_id", item_col="item_id", rating_col="rating"
        ),
        "'rating'",
        "clear",
    ),
    Case(
        "load_table-bad-date",
        lambda t: data.load_table(
            t / "baddate.csv", user_col="user_id", item_col="item_id", time_col="ts"
        ),
        "'ts'",
        "clear",
    ),
    Case(
        "load_table-ids_as",
        lambda t: data.load_table(
            t / "inter.csv", user_col="user_id", item_col="item_id", ids_as="int"
        ),
        "`ids_as`",
        "clear",
    ),
    Case(
        "Interactions-float-user_idx",
        lambda t: _inter(user_idx=np.array([0.7, 1.2])),
        "`user_idx`",
        "silent",
    ),
    Case(
        "Interactions-float-item_idx",
        lambda t: _inter(item_idx=np.array([0.0, 1.0])),
        "`item_idx`",
        "silent",
    ),
    Case(
        "Interactions-range",
        lambda t: _inter(item_idx=np.array([0, 5], I32)),
        "`item_idx`",
        "clear",
    ),
    Case(
        "Interactions-lengths", lambda t: _inter(item_idx=np.array([0], I32)), "`item_idx`", "clear"
    ),
    Case(
        "from_frame-keep",
        lambda t: data.from_frame(
            pd.DataFrame({"u": [1], "i": [2]}), user_col="u", item_col="i", keep="middle"
        ),
        "`keep`",
        "clear",
    ),
    Case(
        "from_frame-column",
        lambda t: data.from_frame(
            pd.DataFrame({"u": [1], "i": [2]}), user_col="u", item_col="item"
        ),
        "`item_col`",
        "clear",
    ),
    Case(
        "random_split-test_frac",
        lambda t: data.random_split(_small_inter(), seed=0, test_frac=1.5),
        "`test_frac`",
        "clear",
    ),
    Case(
        "random_split-seed",
        lambda t: data.random_split(_small_inter(), seed="a"),
        "`seed`",
        "clear",
    ),
    Case(
        "cold_item_split-seed",
        lambda t: data.cold_item_split(_small_inter(), seed=None),
        "`seed`",
        "clear",
    ),
    Case(
        "temporal_split-no-times",
        lambda t: data.temporal_split(_small_inter()),
        "timestamps",
        "clear",
    ),
    Case(
        "implicit-no-ratings",
        lambda t: data.implicit(_small_inter(), threshold=3.0),
        "rating",
        "clear",
    ),
    # --- sweep ----------------------------------------------------------------------
    Case(
        "run_grid-fn-returns-array",
        lambda t: sweep.run_grid(
            lambda k, noise: noise, key=KEY, grid={"noise": [1.0]}, progress=False
        ),
        "`fn` must return",
        "obscure",
    ),
    Case(
        "run_grid-string-grid",
        lambda t: _rg(grid={"noise": ["high"]}),
        "`grid` entry `noise`",
        "obscure",
    ),
    Case(
        "run_grid-seed-knob", lambda t: _rg(grid={"seed": [1.0]}), "`grid` entry `seed`", "obscure"
    ),
    Case(
        "run_grid-grid-and-static",
        lambda t: _rg(static={"noise": [1.0]}),
        "`grid` and `static`",
        "obscure",
    ),
    Case("run_grid-n_seeds", lambda t: _rg(n_seeds=0), "`n_seeds`", "clear"),
    Case("run_grid-chunk_size", lambda t: _rg(chunk_size="big"), "`chunk_size`", "clear"),
    Case("run_grid-key-none", lambda t: _rg(key=None), "`key`", "clear"),
    Case(
        "run_grid-memory_fraction", lambda t: _rg(memory_fraction=2.0), "`memory_fraction`", "clear"
    ),
    Case(
        "run_grid-checkpoint-is-file",
        lambda t: _rg(checkpoint_dir=t / "inter.csv"),
        "`checkpoint_dir`.*not a folder",
        "obscure",
    ),
    Case(
        "run_grid-locked-folder",
        lambda t: _rg(checkpoint_dir=_locked_folder(t)),
        f"`checkpoint_dir`.*locked by pid {os.getppid()}",
        "obscure",
    ),
    Case(
        "run_grid-foreign-chunk",
        lambda t: _rg(grid={"noise": [1.0, 2.0]}, checkpoint_dir=_foreign_chunk(t), chunk_size=1),
        "chunk-s0000-c000001.npz was written by another run",
        "silent",
    ),
    Case("expand_grid-scalar", lambda t: sweep.expand_grid({"a": 1.0}), "`a`", "clear"),
    Case("config_fingerprint-type", lambda t: _rg(fingerprint=3), "`fingerprint`", "clear"),
    # --- study configs --------------------------------------------------------------
    Case(
        "config-density-above-one",
        lambda t: config.load_config(_cfg(t, "[config]\ndensities = [2.0]\n")),
        r"`config\.densities`",
        "silent",
    ),
    Case(
        "config-negative-n_items",
        lambda t: config.load_config(_cfg(t, "[config]\nn_items = -5\n")),
        r"`config\.n_items`",
        "silent",
    ),
    Case(
        "config-nan-noise",
        lambda t: config.load_config(_cfg(t, "[config]\nnoise = nan\n")),
        r"`config\.noise`",
        "silent",
    ),
    Case(
        "config-fraction",
        lambda t: config.load_config(_cfg(t, "[config]\nshared_fraction = 1.5\n")),
        r"`config\.shared_fraction`",
        "silent",
    ),
    Case(
        "config-unknown-key",
        lambda t: config.load_config(_cfg(t, "[config]\nn_itemz = 5\n")),
        "n_itemz",
        "clear",
    ),
    Case(
        "config-type",
        lambda t: config.load_config(_cfg(t, '[config]\nn_seeds = "x"\n')),
        r"`config\.n_seeds`",
        "clear",
    ),
    Case("config-missing-file", lambda t: config.load_config(t / "nope.toml"), "`path`", "clear"),
    Case("config-bad-toml", lambda t: config.load_config(_cfg(t, "[config\n")), "`path`", "clear"),
    # --- command line ---------------------------------------------------------------
    Case(
        "cli-report-nan-headline",
        lambda t: _cli("report", _results(t, "nan", SYN_NAN)),
        "NaN.*recall_cf: 1 of 4",
        "silent",
        CliError,
    ),
    Case(
        "cli-report-header-only",
        lambda t: _cli("report", _results(t, "hdr", "density,K,recall_cf\n")),
        "no rows",
        "obscure",
        CliError,
    ),
    Case(
        "cli-report-empty-csv",
        lambda t: _cli("report", _results(t, "empty", "")),
        "empty",
        "obscure",
        CliError,
    ),
    Case(
        "cli-report-missing-column",
        lambda t: _cli("report", _results(t, "nok", "density,seed,recall_cf\n0.1,0,0.3\n")),
        "synthetic_complementarity",
        "obscure",
        CliError,
    ),
    Case(
        "cli-report-missing-meta",
        lambda t: _cli("report", _results(t, "nometa", SYN_FULL, meta=False)),
        "meta.json is missing",
        "obscure",
        CliError,
    ),
    Case(
        "cli-report-file",
        lambda t: _cli("report", t / "inter.csv"),
        "is a file",
        "obscure",
        CliError,
    ),
    Case(
        "cli-report-missing-dir",
        lambda t: _cli("report", t / "nope"),
        "does not exist",
        "obscure",
        CliError,
    ),
    Case(
        "cli-diagnose-header-only",
        lambda t: _cli(
            "diagnose",
            "--out",
            t / "diag_out",
            t / "header.csv",
            t / "a.npy",
            t / "b.npy",
            "--ids-a",
            t / "item_ids.txt",
            "--ids-b",
            t / "item_ids.txt",
        ),
        "no interactions",
        "obscure",
        CliError,
    ),
    Case(
        "cli-diagnose-threshold-flag",
        lambda t: _cli(
            "diagnose",
            "--out",
            t / "diag_out",
            t / "rated_ok.csv",
            t / "a.npy",
            t / "b.npy",
            "--ids-a",
            t / "item_ids.txt",
            "--ids-b",
            t / "item_ids.txt",
            "--rating-col",
            "rating",
            "--threshold",
            "4",
        ),
        "--allow-extra",
        "obscure",
        CliError,
    ),
    Case(
        "cli-diagnose-ids",
        lambda t: _cli(
            "diagnose",
            "--out",
            t / "diag_out",
            t / "inter.csv",
            t / "a.npy",
            t / "b.npy",
            "--ids-a",
            t / "bad_ids.txt",
            "--ids-b",
            t / "item_ids.txt",
        ),
        "ids do not match",
        "obscure",
        CliError,
    ),
    Case(
        "cli-diagnose-missing-file",
        lambda t: _cli(
            "diagnose", "--out", t / "diag_out", t / "nope.csv", t / "a.npy", "--train-cf", "ease"
        ),
        "nope.csv",
        "obscure",
        CliError,
    ),
    Case("cli-diagnose-k", lambda t: _diag(t, "--k", "0"), "`ks`", "obscure", CliError),
    Case(
        "cli-diagnose-two-views",
        lambda t: _cli(
            "diagnose",
            "--out",
            t / "diag_out",
            t / "inter.csv",
            t / "a.npy",
            "--ids-a",
            t / "item_ids.txt",
        ),
        "exactly one",
        "obscure",
        CliError,
    ),
    Case(
        "cli-sweep-config-density",
        lambda t: _cli("sweep", _cfg(t, "[config]\ndensities = [2.0]\n")),
        r"`config\.densities`",
        "silent",
        CliError,
    ),
    Case(
        "cli-sweep-missing-config",
        lambda t: _cli("sweep", t / "nope.toml"),
        "`path`",
        "obscure",
        CliError,
    ),
    Case(
        "cli-sweep-unknown-study",
        lambda t: _cli("sweep", _study_cfg(t)),
        "study `no_such_study`",
        "obscure",
        CliError,
    ),
    # --- recommenders and models (fixed with the models and semantic-view work) ------
    Case(
        "user_profiles-item-out-of-range",
        lambda t: cj.user_profiles(
            np.eye(3, dtype=np.float32), np.array([0, 0]), np.array([1, 7]), n_users=1
        ),
        "`item_idx`",
        "silent",
    ),
    Case(
        "user_profiles-negative-user",
        lambda t: cj.user_profiles(
            np.eye(3, dtype=np.float32), np.array([-1, 0]), np.array([1, 2]), n_users=1
        ),
        "`user_idx`",
        "silent",
    ),
    Case(
        "user_profiles-user-too-large",
        lambda t: cj.user_profiles(
            np.eye(3, dtype=np.float32), np.array([0, 4]), np.array([1, 2]), n_users=2
        ),
        "`user_idx`",
        "silent",
    ),
    Case(
        "user_profiles-float-ids",
        lambda t: cj.user_profiles(
            np.eye(3, dtype=np.float32), np.array([0.5, 1.0]), np.array([1, 2]), n_users=2
        ),
        "`user_idx`",
        "silent",
    ),
    Case(
        "popularity-negative",
        lambda t: cj.popularity(np.array([-1, 0, 1]), n_items=3),
        "`item_idx`",
        "silent",
    ),
    Case(
        "popularity-too-large",
        lambda t: cj.popularity(np.array([0, 5]), n_items=3),
        "`item_idx`",
        "silent",
    ),
    Case(
        "fit_bpr-learning_rate-nan",
        lambda t: cj.fit_bpr(
            KEY,
            np.array([0, 1], I32),
            np.array([0, 1], I32),
            n_users=2,
            n_items=3,
            config=cj.BPRConfig(dim=2, n_epochs=1),
            hparams=cj.BPRHParams(learning_rate=float("nan")),
        ),
        "learning_rate",
        "silent",
    ),
    Case(
        "fit_bpr-l2-negative",
        lambda t: cj.fit_bpr(
            KEY,
            np.array([0, 1], I32),
            np.array([0, 1], I32),
            n_users=2,
            n_items=3,
            config=cj.BPRConfig(dim=2, n_epochs=1),
            hparams=cj.BPRHParams(l2=-1.0),
        ),
        "`?l2",
        "silent",
    ),
    Case(
        "fit_ease-l2-none",
        lambda t: cj.fit_ease(
            np.array([0, 1], I32), np.array([0, 1], I32), n_users=2, n_items=3, l2=None
        ),
        "`l2`",
        "obscure",
    ),
]


def _study_cfg(tmp) -> Path:
    path = tmp / "unknown_study.toml"
    path.write_text(f'study = "no_such_study"\nout_dir = "{tmp / "sweep_out"}"\n')
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    t = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}") for u in range(20) for i in rng.choice(12, 6, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(t / "inter.csv", index=False)
    rated = pd.DataFrame(rows, columns=["user_id", "item_id"])
    rated["rating"] = np.where(rated["item_id"] == "i0", 1.0, 5.0)
    rated.to_csv(t / "rated_ok.csv", index=False)
    (t / "rated.csv").write_text("user_id,item_id,rating\nu1,i1,good\n")
    (t / "baddate.csv").write_text("user_id,item_id,ts\nu1,i1,yesterday\n")
    (t / "header.csv").write_text("user_id,item_id\n")
    (t / "empty.csv").write_text("")
    (t / "item_ids.txt").write_text("\n".join(f"i{i}" for i in range(12)))
    (t / "bad_ids.txt").write_text("\n".join(f"x{i}" for i in range(12)))
    np.save(t / "a.npy", rng.normal(size=(12, 4)).astype(np.float32))
    np.save(t / "b.npy", rng.normal(size=(12, 4)).astype(np.float32))
    return t


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_is_refused_naming_the_argument(case: Case, files: Path):
    if case.match is None:  # a value case: the function asserts the right value itself
        case.fn(files)
        return
    with pytest.raises(case.exc, match=case.match):
        case.fn(files)


def test_the_table_is_large_and_covers_every_class():
    kinds = pd.Series([c.kind for c in CASES]).value_counts()
    assert len(CASES) >= 80
    assert kinds["silent"] >= 28 and kinds["obscure"] >= 16, kinds.to_dict()
    assert len({c.id for c in CASES}) == len(CASES)


def test_cli_traceback_only_with_debug(files):
    argv = ["report", str(files / "nope")]
    with pytest.raises(CliError):
        _cli(*argv)
    with pytest.raises(ValueError, match="does not exist"):
        cli.main(["--debug", *argv])
    with pytest.raises(ValueError, match="does not exist"):
        cli.main([*argv, "--debug"])


@pytest.mark.slow
def test_cli_user_error_from_a_real_process(files):
    out = subprocess.run(
        [sys.executable, "-m", "complemjax.cli", "report", str(files / "inter.csv")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 2
    assert out.stderr.startswith("complemjax: error: RESULTS_DIR") and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1
