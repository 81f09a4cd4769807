"""Recall@20 of the semantic ranker variants x encoders x post-processings on MovieLens.

A quick offline look on one split. The seeded table is computed inside the MovieLens study
(``movielens_complementarity_semantic_variants.csv`` and its report section: ratings >= 4
as positives, the study's variants, selection on the tuning split, test per seed); this
script differs from it on purpose: one random per-user split (70/10/20, seed 0) of the full
data with *every* rating an implicit interaction. Each (post-processing, ranker) is scored
on validation (history = train, train excluded) and on test (history = train, train and
validation excluded); the selection uses validation only. Popularity and random are on the
same test protocol.

    python scripts/semantic_rankers_table.py --encoders wordllama e5 [--imdb]

Embeddings come from the per-user cache (``semantic.default_cache_dir()``); all text is
embedded before any JAX work starts.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from complemjax import cf, ranking, recommenders, semantic
from complemjax.data import imdb_item_info, join_imdb, load_movielens, random_split


def _recall(top, sets, k=20):
    return float(ranking.evaluate_topk(top.items, sets, ks=(k,)).mean("recall")[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoders", nargs="+", default=["wordllama", "e5"])
    ap.add_argument("--imdb", action="store_true", help="also compare IMDB text templates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.time()
    ml = load_movielens()
    templates = {"base": None}
    if args.imdb:
        info = imdb_item_info(ml.item_info, join_imdb(ml.item_info))
        templates["imdb"] = semantic.item_text_imdb
        templates["imdb+ratings"] = lambda r: semantic.item_text_imdb(r, include_ratings=True)
    else:
        info = ml.item_info
    # 1. all text embedding first (the e5 engine's OpenMP threads compete with XLA)
    embs = {}
    for enc in args.encoders:
        encoder = semantic.get_encoder(enc)
        for tname, tmpl in templates.items():
            embs[enc, tname] = semantic.embed_items(
                info, encoder=encoder, cache_dir=True, on_missing="skip", template=tmpl
            )
    print(f"embedded in {time.time() - t0:.0f}s", flush=True)
    split = random_split(ml, seed=args.seed, test_frac=0.2, valid_frac=0.1)
    tr, U, n_items = split.train, ml.n_users, ml.n_items
    valid_sets = split.valid.padded_item_sets()
    test_sets = split.test.padded_item_sets()
    excl_valid = split.exclude_for_valid()
    excl_test = split.exclude_for_test()
    rows = []
    pu, pi = cf.popularity_embeddings(tr.item_idx, n_users=U, n_items=n_items)
    rnd = jax.random.uniform(jax.random.key(args.seed), (n_items, 1))
    ones = np.ones((U, 1), np.float32)
    for label, (ue, ie) in (("popularity", (pu, pi)), ("random", (ones, rnd))):
        row = {"encoder": "-", "template": "-", "postprocess": "-", "ranker": label}
        for name, sets, ex in (("valid", valid_sets, excl_valid), ("test", test_sets, excl_test)):
            row[name] = _recall(ranking.topk_from_embeddings(ue, ie, k=20, exclude=ex), sets)
        rows.append(row)
        print(json.dumps(row), flush=True)
    n_max = max(r.n_neighbors or 0 for r in recommenders.DEFAULT_RANKERS)
    for (enc, tname), sem in embs.items():
        pps = semantic.DEFAULT_POSTPROCESSES if tname == "base" else (
            semantic.PostProcess(center=True),)  # fmt: skip
        rankers = recommenders.DEFAULT_RANKERS
        for pp in pps:
            x = semantic.postprocess(sem.embeddings, pp, mask=sem.has_text)
            nb = recommenders.item_neighbors(x, n_neighbors=n_max)
            for r in rankers:
                row = {"encoder": enc, "template": tname, "postprocess": pp.describe(),
                       "ranker": r.describe()}  # fmt: skip
                for name, sets, ex in (
                    ("valid", valid_sets, excl_valid),
                    ("test", test_sets, excl_test),
                ):
                    top = recommenders.semantic_topk(
                        r, x, tr.user_idx, tr.item_idx, n_users=U, k=20, exclude=ex,
                        ratings=tr.ratings, timestamps=tr.timestamps, neighbors=nb,
                    )  # fmt: skip
                    row[name] = _recall(top, sets)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"total {time.time() - t0:.0f}s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
