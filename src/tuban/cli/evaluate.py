"""``tuban evaluate PRED TRUTH_RASTER``: pixel and object precision / recall / F1 as JSON."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from tuban.cli import add_workspace_option

    p = sub.add_parser("evaluate", help="score predicted patches against a truth change raster")
    p.add_argument("pred", metavar="PRED", help="predicted patches (GeoPackage layer 'patches', or any vector file)")
    p.add_argument("truth", metavar="TRUTH_RASTER", help="truth raster (change pixels = --change-value)")
    p.add_argument("--change-value", type=int, help="value of changed pixels (default: the largest value)")
    p.add_argument("--grid", metavar="REF", help="raster whose grid the (non-georeferenced) truth uses")
    p.add_argument("--mmu-ha", type=float, default=0.04, help="object-level: count truth objects ≥ this (ha)")
    add_workspace_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from tuban.detect.evaluate import evaluate

    print(json.dumps(evaluate(args.pred, args.truth, change_value=args.change_value, grid=args.grid,
                              mmu_ha=args.mmu_ha), indent=2))
    return 0
