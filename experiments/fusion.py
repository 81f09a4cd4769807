"""Fusion study: rule, gated and shared-private fusion vs alignment baselines on MovieLens.

Usage: python experiments/fusion.py [--out results] [--full]
The study itself lives in complemjax.studies.fusion.
"""

import argparse

from complemjax.studies import fusion as study

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--full", action="store_true", help="the larger grid")
    args = parser.parse_args()
    study.run(args.out, full=args.full)
    print(study.render(args.out))
