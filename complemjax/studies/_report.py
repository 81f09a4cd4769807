"""Statistics, verdicts, tables and figures of the MovieLens studies (from saved tables).

Every interval here says what it is over:

- ``[cluster CI]``: 95% cluster bootstrap (BCa, :func:`complemjax.stats.cluster_bootstrap`)
  over users, all of a user's seeds kept, pooled over seeds (users are the same people in
  every seed, so user × seed rows are not independent);
- ``[seed t]``: 95% Student-t interval over seeds (:func:`complemjax.stats.seed_interval`).

Paired tests are the cluster sign-flip test of :mod:`complemjax.stats`; the verdicts use the
pre-registered claims :data:`complemjax.stats.C1` … ``C5`` and Holm's correction across
every claim × variant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
import pandas as pd

from complemjax import report
from complemjax import stats as st

# ----------------------------------------------------------------------------- small metrics


def tail_share(top: npt.ArrayLike, head_mask: npt.ArrayLike) -> float:
    """Share of recommended slots (``-1`` ignored) holding tail items (not in ``head_mask``)."""
    t = np.asarray(top)
    valid = t >= 0
    tail = ~np.asarray(head_mask)[np.maximum(t, 0)]
    return float((tail & valid).sum() / max(valid.sum(), 1))


def intra_list_diversity(top: jax.typing.ArrayLike, x_unit: jax.typing.ArrayLike) -> float:
    """Mean over users of ``1 − mean_{i≠j∈L_u} cos(x_i, x_j)`` (``x_unit``: unit rows)."""
    t = jnp.asarray(top)
    v = jnp.where((t >= 0)[..., None], jnp.asarray(x_unit)[jnp.maximum(t, 0)], 0.0)
    g = jnp.einsum("uid,ujd->uij", v, v)
    n = jnp.sum(t >= 0, axis=1).astype(g.dtype)
    off = jnp.sum(g, axis=(1, 2)) - jnp.einsum("uii->u", g)
    pairs = jnp.maximum(n * (n - 1), 1.0)
    return float(jnp.mean(1.0 - off / pairs))


def ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> float:
    """``Σ num / Σ den`` (NaN when the denominator sums to 0)."""
    d = float(np.nansum(np.asarray(den)))
    return float(np.nansum(np.asarray(num)) / d) if d > 0 else math.nan


# ----------------------------------------------------------------------------- matrices
def matrix(df: pd.DataFrame, value: str, unit: str = "user") -> tuple[np.ndarray, np.ndarray]:
    """Pivot a long table to ``[S, U]`` (seeds × units) and its mask (finite entries)."""
    m = df.pivot_table(index="seed", columns=unit, values=value, aggfunc="first")
    a = m.to_numpy(dtype=float)
    mask = np.isfinite(a)
    return np.where(mask, a, 0.0), mask


def _pair(pairs: pd.DataFrame, variant: str, a: str, b: str) -> pd.DataFrame:
    g = pairs[(pairs["variant"] == variant) & (pairs["a"] == a) & (pairs["b"] == b)]
    return g[g["n_test"] > 0]


def aligned(
    frames: list[pd.DataFrame], values: list[str], unit: str = "user"
) -> tuple[list[np.ndarray], np.ndarray]:
    """``[S, U]`` matrices of ``values`` from frames that share seeds and units."""
    keys = None
    for f in frames:
        k = set(zip(f["seed"], f[unit]))
        keys = k if keys is None else keys & k
    out = []
    for f, v in zip(frames, values):
        f = f[[(s, u) in keys for s, u in zip(f["seed"], f[unit])]]
        out.append(matrix(f, v, unit))
    mask = np.logical_and.reduce([m for _, m in out])
    return [a for a, _ in out], mask


def cluster_ci(
    key: jax.Array,
    num: jax.typing.ArrayLike,
    den: jax.typing.ArrayLike | None,
    mask: np.ndarray,
    n_boot: int,
) -> tuple[float, float, float]:
    """Estimate and 95% cluster-bootstrap interval of ``Σ num / Σ den`` (users = clusters)."""
    if not mask.any():
        return (math.nan, math.nan, math.nan)
    r = st.cluster_bootstrap(key, num, den, mask, n_boot=n_boot)
    return float(r.estimate), float(r.low), float(r.high)


def fmt(est: float, lo: float, hi: float, digits: int = 3) -> str:
    return report.format_ci(est, lo, hi, digits)


# ----------------------------------------------------------------------------- claims
def _c1(key, pairs, variant, n_boot):
    sem, null = _pair(pairs, variant, "semantic", "bpr"), _pair(pairs, variant, "bpr-seed2", "bpr")
    (num, den), mask = aligned([sem, null], ["overlap", "overlap"])
    est, lo, hi = cluster_ci(key, num, den, mask, n_boot)
    p = st.cluster_ratio_test(num, den, mask, threshold=st.C1.threshold, alternative="less")
    return st.ClaimResult(st.C1, est, lo, hi, math.nan, variant), float(p.p_value)


def _c2(key, pairs, variant, n_boot):
    sem = _pair(pairs, variant, "semantic", "bpr")
    deg = _pair(pairs, variant, "bpr-degraded", "bpr")
    sem = sem.assign(gain=sem["merge"] - sem["recall_b"])
    deg = deg.assign(gain=deg["merge"] - deg["recall_b"])
    (a, b), mask = aligned([sem, deg], ["gain", "gain"])
    pc = st.paired_comparison(key, a, b, mask, n_boot=n_boot, alternative="greater")
    md = pc.mean_diff
    note = f"{variant}; MDE {pc.mde:.3f}"
    res = st.ClaimResult(st.C2, float(md.estimate), float(md.low), float(md.high), math.nan, note)
    return res, float(pc.sign_flip.p_value)


def _c3(probes_df, variant):
    g = probes_df[(probes_df["variant"] == variant) & (probes_df["probe"] == "ridge")
                  & (probes_df["test_set"] == "in_distribution")]  # fmt: skip
    piv = g.pivot_table(index="seed", columns="source", values="r2")
    r = (piv["semantic text vectors"] / piv["bpr-seed2 (ceiling)"]).to_numpy()
    t = st.seed_t_test(r[:, None], np.full((r.size, 1), st.C3.threshold), alternative="less")
    low, high = t.low + st.C3.threshold, t.high + st.C3.threshold
    res = st.ClaimResult(st.C3, float(np.mean(r)), low, high, math.nan, variant)
    return res, float(t.p_value)


def _c5(key, items, variant, n_boot):
    g = items[items["variant"] == variant]
    (a, b), mask = aligned([g, g], ["mknn_selected", "mknn_seed_null"], unit="item")
    pc = st.paired_comparison(key, a, b, mask, n_boot=n_boot, alternative="less")
    md = pc.mean_diff
    w = ", ".join(f"{x:g}" for x in sorted(set(g["selected_weight"])))
    note = f"{variant}; selected weight {w}"
    res = st.ClaimResult(st.C5, float(md.estimate), float(md.low), float(md.high), math.nan, note)
    return res, float(pc.sign_flip.p_value)


def claims_complementarity(
    tables: dict[str, pd.DataFrame], key: jax.Array
) -> list[tuple[st.ClaimResult, float]]:
    """C1, C2, C3 (and C5 where the sweep ran) per variant: ``(result, raw p)``."""
    out = []
    n_boot = 1000
    pairs = tables["pairs"]
    for j, v in enumerate(dict.fromkeys(pairs["variant"])):
        k1, k2, k5 = jax.random.split(jax.random.fold_in(key, j), 3)
        out.append(_c1(k1, pairs, v, n_boot))
        out.append(_c2(k2, pairs, v, n_boot))
        out.append(_c3(tables["probes"], v))
        if "c5_items" in tables and (tables["c5_items"]["variant"] == v).any():
            out.append(_c5(k5, tables["c5_items"], v, n_boot))
    return out


def verdicts(results: list[tuple[st.ClaimResult, float]]) -> tuple[str, list[st.ClaimResult]]:
    """Holm-adjust the raw p-values of every claim × variant; the verdict table markdown."""
    ps = np.array([p for _, p in results], dtype=float)
    ok = np.isfinite(ps)
    adj = np.full(ps.shape, np.nan)
    if ok.any():
        adj[ok] = st.holm(ps[ok])
    rows = [r._replace(p_adjusted=float(a)) for (r, _), a in zip(results, adj)]
    rows.sort(key=lambda r: r.claim.id)
    return st.verdict_table(rows), rows


def headline(rows: list[st.ClaimResult]) -> str:
    """First lines of the report: which claims the data refute, support, leave open."""
    by = {"supported": [], "not supported": [], "inconclusive": []}
    for r in rows:
        v = st.verdict(r.claim, r.effect, (r.low, r.high), r.p_adjusted)
        by[v].append(f"{r.claim.id} ({r.note.split(';')[0]})")
    lines = []
    if by["not supported"]:
        lines.append("**The data do not support " + ", ".join(by["not supported"]) + ".**")
    if by["supported"]:
        lines.append("Supported: " + ", ".join(by["supported"]) + ".")
    if by["inconclusive"]:
        lines.append("Inconclusive: " + ", ".join(by["inconclusive"]) + ".")
    return " ".join(lines)


# ----------------------------------------------------------------------------- tables
ACCURACY_LEGEND = {
    "recall@20": "test Recall@20, mean over seeds [seed t]",
    "ndcg@20": "test NDCG@20, mean over seeds [seed t]",
    "coverage@20": "share of the catalogue in at least one user's top-20 [seed t]",
    "tail_share@20": "share of recommended slots holding tail items (outside the 20% most "
    "popular by training count) [seed t]",
}
AGREEMENT_NOTE = """Pairs (A, B) at K = 20 on test, B = BPR-MF unless stated. Read the semantic row
against the null rows: any two imperfect rankers have unique hits and a positive oracle
merge, so only a semantic value beyond the CF-seed and accuracy-matched references says
something about the views. The oracle merge bounds re-rankers of the two top-20 lists.
"""
AGREEMENT_LEGEND = {
    "recall_A": "mean test Recall@20 of A (users with test items)",
    "overlap@20": "|L_A ∩ L_B| / 20, mean over users [cluster CI]",
    "overlap_vs_seed": "overlap@20(A, B) / overlap@20(B other seed, B) for the same users: "
    "1 = as much agreement as two seeds of the same CF model [cluster CI]",
    "unique_share_A": "Σ_u |H_A \\ H_B| / Σ_u |H_A ∪ H_B|: share of the pair's hits only A "
    "finds [cluster CI]",
    "merge_gain_rel": "Σ_u oracle-merge Recall@20 / Σ_u Recall@20 of B − 1: relative gain of "
    "the best 20-list drawn from both lists over B alone [cluster CI]",
    "union_2k": "Σ_u |H_A ∪ H_B| / Σ_u |T_u| (a budget of 40 slots)",
}
PROBE_LEGEND = {
    "source": "the view the probe maps from; target: BPR item embeddings (seed 1)",
    "r2": "variance-weighted R² of the predicted BPR embeddings on the test items [seed t]",
    "debiased_cka": "debiased linear CKA between prediction and target [seed t]",
    "mutual_knn10": "mutual kNN@10 between prediction and target [seed t]",
    "knn_chance": "chance level of mutual kNN@10, 10/(n−1)",
    "test_set": "`in_distribution`: 20% of warm items (>= 5 training interactions) held out; "
    "`cold_items`: items with 1–3 training interactions",
}
C5_LEGEND = {
    "model": "RLMRec-Con at alignment weight w (w = 0 is the LightGCN backbone); `w=0, other "
    "seed (null)`: the backbone trained from another initialisation",
    "recall": "test Recall@20 [seed t]",
    "mutual_knn10_to_w0": "mutual kNN@10 of its item embeddings with the w = 0 embeddings "
    "(items with training interactions) [seed t]",
    "debiased_cka_to_w0": "debiased linear CKA to the w = 0 item embeddings [seed t]",
    "coverage": "catalogue coverage@20 [seed t]",
    "tail_share": "share of recommended slots on tail items [seed t]",
    "ild": "intra-list diversity: 1 − mean pairwise cosine of the list's text vectors [seed t]",
    "overlap_semantic": "top-20 overlap with the semantic ranker [seed t]",
    "unique_share_semantic": "share of (semantic ∪ model) hits only the semantic ranker "
    "finds [seed t]",
}
COLD_NOTE = """Test items never occur in training (a cold-item split: 20% of the items are test,
10% validation); every ranker ranks the cold test items only. ID-based CF models have no
trained vector for these items and cannot rank them; the semantic ranker (text; one row per
encoder, each selected on the warm tuning split) and AlphaRec (an MLP of the text vectors) can.
Popularity cannot order them either (no cold item has a training interaction, so all tie and
it lists them in catalogue order, by MovieLens movie id: not a random order, since ids follow
when films entered the catalogue); random is the chance reference. AlphaRec's epochs are
chosen on the cold validation items.

"""
COLD_LEGEND = {
    "recall@20 [cluster CI]": "test Recall@20 among cold test items; `a − b` rows: paired "
    "per-user difference [cluster CI]",
}


def agreement_row(
    key: jax.Array, pairs: pd.DataFrame, variant: str, a: str, b: str, n_boot: int = 1000
) -> dict:
    """Overlap, overlap vs the CF-seed reference, unique share, oracle gain of (a, b)."""
    g = _pair(pairs, variant, a, b)
    k = jax.random.split(key, 5)
    (ov, un, uq, mg, rb), m = aligned([g] * 5, ["overlap", "union", "unique_a", "merge",
                                                "recall_b"])  # fmt: skip
    row = {"recall_A": float(g["recall_a"].mean()),
           "overlap@20": fmt(*cluster_ci(k[0], ov, None, m, n_boot)),
           "unique_share_A": fmt(*cluster_ci(k[1], uq, un, m, n_boot)),
           "merge_gain_rel": _shift(cluster_ci(k[2], mg, rb, m, n_boot), -1.0),
           "union_2k": ratio(g["union"], g["n_test"])}  # fmt: skip
    null = _pair(pairs, variant, "bpr-seed2", b) if b == "bpr" else g.iloc[:0]
    if len(null):
        (x, y), m2 = aligned([g, null], ["overlap", "overlap"])
        row["overlap_vs_seed"] = fmt(*cluster_ci(k[3], x, y, m2, n_boot))
    else:
        row["overlap_vs_seed"] = "—"
    gain = cluster_ci(k[4], mg - rb, None, m, n_boot)
    row["_gain"] = gain
    return row


def _shift(ci, d) -> str:
    return fmt(*(x + d for x in ci))


def paired_cell(key: jax.Array, df: pd.DataFrame, a: str, b: str, n_boot: int = 1000) -> str:
    """``mean [cluster CI]`` of the per-user paired difference ``a − b`` in ``df``."""
    (x, y), m = aligned([df[df["method"] == a], df[df["method"] == b]], ["recall", "recall"])
    return fmt(*cluster_ci(key, x - y, None, m, n_boot), digits=4)


def selection_table(tables: dict[str, pd.DataFrame]) -> str:
    tun = tables["tuning"].copy()
    tun["edge"] = tun["edge"].fillna("")
    tun["valid_recall@20"] = tun["valid_recall@20"].map(lambda v: f"{v:.4f}")
    tun["train_s"] = tun["train_s"].map(lambda v: f"{v:.0f}")
    legend = {
        "configs": "configurations tried (the same budget for every learned model)",
        "chosen": "chosen hyperparameters",
        "epochs": "epochs of the chosen checkpoint (early stopping on validation)",
        "valid_recall@20": "validation Recall@20 of the choice on the tuning split",
        "train_s": "seconds of the whole selection (this run's load)",
        "edge": "choices at the edge of the grid or of the epoch budget",
    }
    out = report.markdown_table(tun, legend)
    sel = tables.get("selection")
    if sel is not None and len(sel):
        agg = sel.groupby(["variant", "method"], sort=False).agg(
            epochs=("epochs", "mean"), valid_recall=("valid_recall", "mean"),
            seconds=("seconds", "mean"))  # fmt: skip
        agg = agg.reset_index()
        out += "\nPer-seed retraining of the chosen configuration (mean over seeds):\n\n"
        out += report.markdown_table(agg, {
            "epochs": "epochs chosen on the seed's validation half",
            "valid_recall": "its validation Recall@20", "seconds": "training seconds"})  # fmt: skip
    return out


def timing_table(tables: dict[str, pd.DataFrame], meta: dict) -> str:
    t = tables["timing"].copy()
    total = float(meta["seconds"])
    t["share"] = (t["seconds"] / total).map(lambda v: f"{100 * v:.0f}%")
    legend = {
        "seconds": "wall-clock seconds in this stage over all variants and seeds",
        "calls": "times the stage ran",
        "share": f"share of the study's {total:.0f} s",
    }
    return report.markdown_table(t, legend)


# ----------------------------------------------------------------------------- figures
def gain_plot(agree: pd.DataFrame, path: str | Path) -> None:
    """Dot-and-interval: oracle-merge Recall@20 gain over BPR of each partner."""
    from complemjax.studies.base import interval_plot

    d = agree.assign(effect=[g[0] for g in agree["_gain"]], ci_low=[g[1] for g in agree["_gain"]],
                     ci_high=[g[2] for g in agree["_gain"]])  # fmt: skip
    d = d.assign(method=[f"{m} ({r.split(':')[0]})" for m, r in zip(d["method"], d["role"])])
    interval_plot(
        d, path=path, facet="variant",
        title="What each partner adds to BPR-MF in the oracle merge (semantic vs null partners)",
        xlabel="oracle-merge Recall@20 − BPR Recall@20, per user (95% cluster bootstrap)",
        zero_label="no gain",
    )  # fmt: skip


def accuracy_diff_plot(
    users: pd.DataFrame,
    path: str | Path,
    key: jax.Array,
    *,
    title: str,
    reference: dict[str, str],
) -> str | Path:
    """Dot-and-interval: per-user Recall@20 of each method minus the reference method's.

    (``reference``: variant -> method, chosen on validation, see :func:`validation_best`).
    """
    from complemjax.studies.base import interval_plot

    rows = []
    for j, (v, g) in enumerate(users.groupby("variant", sort=False)):
        ref = reference[v]
        b = g[g["method"] == ref]
        for m in dict.fromkeys(g["method"]):
            if m == ref:
                continue
            (x, y), mask = aligned([g[g["method"] == m], b], ["recall", "recall"])
            est = cluster_ci(jax.random.fold_in(key, 31 * j + len(rows)), x - y, None, mask, 1000)
            rows.append({"variant": f"{v} (reference: {ref})", "method": m, "effect": est[0],
                         "ci_low": est[1], "ci_high": est[2]})  # fmt: skip
    interval_plot(
        pd.DataFrame(rows), path=path, facet="variant", title=title,
        xlabel="Recall@20 difference to the reference, per user (95% cluster bootstrap)",
        zero_label="the reference",
    )  # fmt: skip
    return path


TUNING_NAMES = {"BPR-MF": "bpr", "LightGCN": "lightgcn", "EASE": "ease", "semantic": "semantic",
                "alpharec": "alpharec", "RLMRec-Con": "rlmrec"}  # fmt: skip


def validation_best(tuning: pd.DataFrame, candidates: Iterable[str]) -> dict[str, str]:
    """Per variant, the candidate with the highest validation Recall@20 on the tuning split.

    Never a test quantity.
    """
    t = tuning.assign(key=tuning["method"].map(TUNING_NAMES))
    t = t[t["key"].isin(list(candidates))]
    return {v: str(g.loc[g["valid_recall@20"].idxmax(), "key"]) for v, g in t.groupby("variant")}


def interval_figure(d: pd.DataFrame, path: str | Path, *, title: str) -> None:
    """Dot-and-interval figure of paired differences, one panel per variant.

    Columns: method, effect, ci_low, ci_high, variant.
    """
    from complemjax.studies.base import interval_plot

    if not len(d):
        return
    interval_plot(
        d, path=path, facet="variant", title=title,
        xlabel="Recall@20 difference, per user (95% cluster bootstrap over users)",
        zero_label="the best single view",
    )  # fmt: skip
