"""Cold-item Recall@20 of the semantic rankers on MovieLens (validation-selected).

``cold_item_split`` (seed 0): 20% of items are test items and 10% validation items, with
all their interactions; they never occur in training. The candidates of a user are the
cold test (resp. validation) items only; here by excluding every other item (score
``-inf``), the same ranking as the ``candidates=`` argument the MovieLens study uses (whose
cold section is the seeded version of this table). Item-kNN neighbours are found in the
whole catalogue (a cold item's neighbours are mostly warm items the user may have seen).
Popularity cannot rank cold items (no training interaction: all tied); random is the null.

    PYTHONPATH=. python scripts/semantic_rankers_cold.py --encoders wordllama e5
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from complemjax import ranking, recommenders, semantic
from complemjax.data import cold_item_split, load_movielens


def _only(cands, n_items, n_users):
    other = np.setdiff1d(np.arange(n_items), cands).astype(np.int32)
    return np.tile(other, (n_users, 1))


def _recall(top, sets, k=20):
    return float(ranking.evaluate_topk(top.items, sets, ks=(k,)).mean("recall")[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoders", nargs="+", default=["wordllama", "e5"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ml = load_movielens()
    embs = {
        enc: semantic.embed_items(
            ml, encoder=semantic.get_encoder(enc), cache_dir=True, on_missing="skip"
        )
        for enc in args.encoders
    }
    split = cold_item_split(ml, seed=args.seed, test_frac=0.2, valid_frac=0.1)
    tr, U, n_items = split.train, ml.n_users, ml.n_items
    sets = {"valid": split.valid.padded_item_sets(), "test": split.test.padded_item_sets()}
    excl = {
        "valid": _only(split.info["valid_items"], n_items, U),
        "test": _only(split.info["test_items"], n_items, U),
    }
    rnd = jax.random.uniform(jax.random.key(args.seed), (n_items, 1))
    ones = np.ones((U, 1), np.float32)
    row = {"encoder": "-", "postprocess": "-", "ranker": "random"}
    for part in ("valid", "test"):
        top = ranking.topk_from_embeddings(ones, rnd, k=20, exclude=excl[part])
        row[part] = _recall(top, sets[part])
    print(json.dumps(row), flush=True)
    n_max = max(r.n_neighbors or 0 for r in recommenders.DEFAULT_RANKERS)
    for enc, sem in embs.items():
        best = None
        for pp in semantic.DEFAULT_POSTPROCESSES:
            x = semantic.postprocess(sem.embeddings, pp, mask=sem.has_text)
            nb = recommenders.item_neighbors(x, n_neighbors=n_max)
            for r in recommenders.DEFAULT_RANKERS:
                row = {"encoder": enc, "postprocess": pp.describe(), "ranker": r.describe()}
                for part in ("valid", "test"):
                    top = recommenders.semantic_topk(
                        r, x, tr.user_idx, tr.item_idx, n_users=U, k=20, exclude=excl[part],
                        ratings=tr.ratings, timestamps=tr.timestamps, neighbors=nb,
                    )  # fmt: skip
                    row[part] = _recall(top, sets[part])
                print(json.dumps(row), flush=True)
                if best is None or row["valid"] > best["valid"]:
                    best = row
        print("SELECTED", json.dumps(best), flush=True)


if __name__ == "__main__":
    main()
