"""Synthetic complementarity study: overlap, unique hits and oracle fusion of two rankers.

Usage: python experiments/synthetic_complementarity.py [--out results] [--full]
The study itself lives in complemjax.studies.synthetic_complementarity.
"""

import argparse

from complemjax.studies import synthetic_complementarity as study

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--full", action="store_true", help="the larger grid")
    args = parser.parse_args()
    study.run(args.out, full=args.full)
    print(study.render(args.out))
