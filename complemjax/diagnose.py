"""``complemjax diagnose``: complementarity of two item views on a user's own data.

Given an interactions file and two item-embedding files (or one embedding file and a CF
model to train), the command splits the interactions (random per-user, seeded), builds one
recommender per view, ranks the full catalogue for every user (training and validation
items excluded) and writes the complementarity table of
:func:`complemjax.complementarity.compare_rankers`.

Recommenders: an embedding file gives a history-profile recommender (mean of the user's
L2-normalised training-item vectors, cosine scores); ``--train-cf bpr`` trains BPR-MF
(learning rate, l2 and epochs chosen on the validation split) and ``--train-cf ease``
fits EASE (l2 chosen on validation).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ranx import Run as RanxRun

    from complemjax import trec
    from complemjax.data import Interactions

__all__ = ["add_parser", "diagnose", "diagnose_runs"]


def _profile_top(emb, split, k):
    from complemjax import ranking, recommenders

    tr = split.train
    prof = recommenders.user_profiles(emb, tr.user_idx, tr.item_idx, n_users=tr.n_users)
    return ranking.topk_from_embeddings(
        prof, emb, k=k, exclude=split.exclude_for_test(), similarity="cosine"
    )


def _cf_top(model: str, split, k: int, seed: int):
    from complemjax import cf, ranking

    tr = split.train
    U, n_items = tr.n_users, tr.n_items
    valid = split.valid.padded_item_sets()
    train_sets = tr.padded_item_sets()
    if model == "bpr":
        sel = cf.select_bpr(
            jax.random.key(seed), tr.user_idx, tr.item_idx, valid, n_users=U, n_items=n_items,
            config=cf.BPRConfig(dim=64, n_epochs=40),
            grid=cf.BPRHParams(learning_rate=jnp.full((3,), 0.005),
                               l2=jnp.asarray([1e-5, 1e-4, 1e-3])),
        )  # fmt: skip
        return ranking.topk_from_embeddings(
            sel.user_emb, sel.item_emb, k=k, exclude=split.exclude_for_test()
        )
    best = (-1.0, None)
    for l2 in (50.0, 200.0, 800.0):
        b = cf.fit_ease(tr.user_idx, tr.item_idx, n_users=U, n_items=n_items, l2=l2)
        top = ranking.topk_from_score_fn(
            cf.ease_score_fn(b, train_sets), n_users=U, n_items=n_items, k=20, exclude=train_sets
        )
        rec = float(ranking.evaluate_topk(top.items, valid, ks=(20,)).mean("recall")[0])
        if rec > best[0]:
            best = (rec, b)
    return ranking.topk_from_score_fn(
        cf.ease_score_fn(best[1], train_sets), n_users=U, n_items=n_items, k=k,
        exclude=split.exclude_for_test(),
    )  # fmt: skip


def diagnose(
    interactions: Interactions,
    emb_a: np.ndarray,
    emb_b: np.ndarray | None = None,
    *,
    train_cf: str | None = None,
    ks: Sequence[int] = (10, 20),
    seed: int = 0,
    n_boot: int = 500,
    test_frac: float = 0.2,
    valid_frac: float = 0.1,
) -> pd.DataFrame:
    """Complementarity table of view A (embeddings) against view B (embeddings or a CF model).

    Args:
        interactions: a :class:`complemjax.data.Interactions`.
        emb_a: ``[n_items, d_a]`` item embeddings of view A, aligned to the item indices.
        emb_b: ``[n_items, d_b]`` item embeddings of view B, or None with ``train_cf``.
        train_cf: ``"bpr"`` or ``"ease"`` to train view B from the interactions.
        ks: cut-offs.
        seed: split, model and bootstrap seed.
        n_boot: bootstrap resamples over users.
        test_frac: per-user fraction held out for testing, in (0, 1) (``data.random_split``).
        valid_frac: per-user fraction held out for validation, in [0, 1).

    Returns:
        The tidy table of :func:`complemjax.complementarity.compare_rankers`.
    """
    from complemjax import _checks, complementarity, data

    if not isinstance(interactions, data.Interactions):
        raise ValueError(
            f"`interactions` must be a complemjax.data.Interactions, got "
            f"{type(interactions).__name__}"
        )
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    ks = tuple(_checks.check_positive_int("ks", k) for k in ks)
    if not ks:
        raise ValueError("`ks` must name at least one cut-off, got ()")
    _checks.check_positive_int("seed", seed, minimum=0)
    _checks.check_positive_int("n_boot", n_boot)
    _checks.check_in_range("test_frac", test_frac, 0.0, 1.0, lo_open=True, hi_open=True)
    _checks.check_in_range("valid_frac", valid_frac, 0.0, 1.0, hi_open=True)
    for name, emb in (("emb_a", emb_a), ("emb_b", emb_b)):
        if emb is None:
            continue
        arr = _checks.check_matrix(name, emb)
        if arr.shape[0] != interactions.n_items:
            raise ValueError(
                f"`{name}` must have one row per item ({interactions.n_items}), got shape "
                f"{arr.shape}"
            )
    if (emb_b is None) == (train_cf is None):
        raise ValueError("give exactly one of `emb_b` (a second embedding file) or `train_cf`")
    if train_cf is not None and train_cf not in ("bpr", "ease"):
        raise ValueError(f"`train_cf` must be 'bpr' or 'ease', got {train_cf!r}")
    split = data.random_split(interactions, seed=seed, test_frac=test_frac, valid_frac=valid_frac)
    test = split.test.padded_item_sets()
    if not (test >= 0).any():
        raise ValueError("`interactions`: the split left no test items (too few per user)")
    kmax = max(ks)
    top_a = _profile_top(jnp.asarray(emb_a), split, kmax)
    if emb_b is not None:
        top_b = _profile_top(jnp.asarray(emb_b), split, kmax)
    else:
        top_b = _cf_top(train_cf, split, kmax, seed)
    counts = np.bincount(split.train.item_idx, minlength=interactions.n_items)
    return complementarity.compare_rankers(
        top_a, top_b, test, ks=ks, history=split.train.padded_item_sets(),
        item_popularity=counts, key=jax.random.key(seed), n_boot=n_boot,
    )  # fmt: skip


def diagnose_runs(
    run_a: trec.Run | RanxRun | Mapping[str, Mapping[str, float]],
    run_b: trec.Run | RanxRun | Mapping[str, Mapping[str, float]],
    qrels: trec.Qrels,
    *,
    ks: Sequence[int] = (10, 20),
    seed: int = 0,
    n_boot: int = 500,
) -> pd.DataFrame:
    """Complementarity table of two rankings produced elsewhere (TREC runs or ranx runs).

    Users are those with relevance judgements (``qrels``); items are every item named in
    the runs or the qrels. Each run's list is cut at ``max(ks)`` (shorter lists are
    padded; a run that skips a judged user gives that user an empty list).

    Args:
        run_a: ranking A: a :class:`complemjax.trec.Run` (see ``trec.read_run``), a ranx
            ``Run`` object, or a ``{user: {item: score}}`` mapping.
        run_b: ranking B, in any of the forms of ``run_a``.
        qrels: :class:`complemjax.trec.Qrels` (see ``trec.read_qrels``).
        ks: cut-offs.
        seed: bootstrap seed.
        n_boot: bootstrap resamples over users.

    Returns:
        The tidy table of :func:`complemjax.complementarity.compare_rankers`.
    """
    from complemjax import complementarity, trec

    run_a = trec.from_ranx(run_a)
    run_b = trec.from_ranx(run_b)
    if not isinstance(qrels, trec.Qrels):
        raise ValueError(f"`qrels` must be a trec.Qrels, got {type(qrels).__name__}")
    ks = tuple(int(k) for k in ks)
    judged = qrels.frame[qrels.frame["relevance"] > 0]
    users = np.array(sorted(set(judged["user"])), dtype=object)
    if users.size == 0:
        raise ValueError("`qrels` has no judgement with relevance > 0")
    items = np.array(
        sorted(set(run_a.frame["item"]) | set(run_b.frame["item"]) | set(qrels.frame["item"])),
        dtype=object,
    )

    def judged_rows(run):
        return trec.Run(run.frame[run.frame["user"].isin(set(users))], run.tag)

    kmax = max(ks)
    top_a = trec.run_to_topk(judged_rows(run_a), user_ids=users, item_ids=items, k=kmax)
    top_b = trec.run_to_topk(judged_rows(run_b), user_ids=users, item_ids=items, k=kmax)
    test = trec.qrels_to_sets(qrels, user_ids=users, item_ids=items)
    return complementarity.compare_rankers(
        top_a, top_b, test, ks=ks, key=jax.random.key(seed), n_boot=n_boot
    )


def _print_table(table: pd.DataFrame, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "complementarity.csv", index=False)
    overall = table[table["bucket_type"] == "all"]
    keep = ["recall_a", "recall_b", "overlap", "jaccard", "unique_a_share_micro",
            "unique_b_share_micro", "recall_merge", "recall_merge_gain_rel"]  # fmt: skip
    view = overall[overall["metric"].isin(keep)][["k", "metric", "value", "ci_low", "ci_high"]]
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(view.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"[complemjax] full table written to {out / 'complementarity.csv'}")


def _cmd_runs(args: argparse.Namespace) -> int:
    from complemjax import trec

    if args.qrels is None:
        raise ValueError("--runs needs --qrels (the relevance judgements of the test items)")
    if args.interactions or args.emb_a or args.emb_b or args.train_cf:
        raise ValueError(
            "give either --runs A B --qrels Q, or INTERACTIONS with embedding files, not both"
        )
    run_a, run_b = (trec.read_run(p) for p in args.runs)
    table = diagnose_runs(
        run_a, run_b, trec.read_qrels(args.qrels), ks=tuple(args.k), seed=args.seed,
        n_boot=args.n_boot,
    )  # fmt: skip
    _print_table(table, Path(args.out))
    return 0


def _cmd(args: argparse.Namespace) -> int:
    from complemjax import data, semantic

    if args.runs is not None:
        return _cmd_runs(args)
    if args.interactions is None or args.emb_a is None:
        raise ValueError("give INTERACTIONS and EMB_A (or --runs A B --qrels Q)")
    inter = data.load_table(
        args.interactions, user_col=args.user_col, item_col=args.item_col,
        rating_col=args.rating_col, time_col=args.time_col, sep=args.sep,
    )  # fmt: skip
    if args.threshold is not None:
        inter = data.implicit(inter, threshold=args.threshold)

    def load(path, ids_path):
        try:
            return semantic.load_precomputed(
                path, inter.item_ids, ids_path=ids_path, id_column=args.id_col,
                allow_extra=args.allow_extra,
            )  # fmt: skip
        except ValueError as e:  # point at the command-line flag, not the Python argument
            msg = str(e).replace("pass allow_extra=True", "pass --allow-extra")
            if args.threshold is not None and "--allow-extra" in msg:
                msg += " (--threshold dropped the items no kept rating mentions)"
            raise ValueError(msg) from e

    emb_a = load(args.emb_a, args.ids_a)
    emb_b = None if args.emb_b is None else load(args.emb_b, args.ids_b)
    table = diagnose(
        inter, emb_a, emb_b, train_cf=args.train_cf, ks=tuple(args.k), seed=args.seed,
        n_boot=args.n_boot,
    )  # fmt: skip
    _print_table(table, Path(args.out))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``diagnose`` subcommand on an argparse subparsers object."""
    p = sub.add_parser(
        "diagnose",
        help="complementarity table of two item views (or two TREC runs)",
        description="Split the interactions, build one recommender per view (embedding "
        "files give history-profile recommenders; --train-cf trains BPR or EASE) and print "
        "and save overlap, unique hits and oracle-fusion bounds with bootstrap intervals. "
        "With --runs A B --qrels Q, compare two rankings produced by other systems instead.",
    )
    p.add_argument("interactions", nargs="?", help="CSV/TSV/Parquet file of interactions")
    p.add_argument(
        "emb_a", nargs="?", help="item embeddings of view A (.npy with --ids, or .parquet)"
    )
    p.add_argument("emb_b", nargs="?", default=None, help="item embeddings of view B")
    p.add_argument("--train-cf", choices=("bpr", "ease"), help="train view B from the data")
    p.add_argument(
        "--runs", nargs=2, metavar=("RUN_A", "RUN_B"), help="two TREC run files to compare"
    )
    p.add_argument("--qrels", default=None, help="TREC qrels of the test items (with --runs)")
    p.add_argument("--user-col", default="user_id")
    p.add_argument("--item-col", default="item_id")
    p.add_argument("--rating-col", default=None)
    p.add_argument("--time-col", default=None)
    p.add_argument("--threshold", type=float, default=None, help="keep ratings >= threshold")
    p.add_argument("--sep", default=",")
    p.add_argument(
        "--allow-extra",
        action="store_true",
        help="ignore embedding rows whose ids are not items of the (filtered) interactions",
    )
    p.add_argument("--id-col", default="item_id", help="id column of .parquet embeddings")
    p.add_argument("--ids-a", default=None, help="ids file (row order) for a .npy emb_a")
    p.add_argument("--ids-b", default=None, help="ids file (row order) for a .npy emb_b")
    p.add_argument("--k", type=int, nargs="+", default=[10, 20])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--out", default="diagnose_out", help="output folder")
    p.set_defaults(func=_cmd)
