"""``tuban export divisions|projects|patches -o FILE``: argument parsing only."""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export divisions, projects or patches with the official field codes")
    p.add_argument("kind", choices=("divisions", "projects", "patches"), help="what to export")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="output file: .gpkg, .shp, .geojson or .kml (by extension)",
    )
    p.add_argument(
        "--round", default=None, metavar="NAME", dest="round_name", help="patches of this round only"
    )
    add_workspace_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.errors import UsageError
    from tuban.io import write_vector
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    if args.round_name is not None and args.kind != "patches":
        raise UsageError("--round applies to patches only", hint=f"drop --round for {args.kind}")
    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        store.check_revision()
        if args.kind == "divisions":
            gdf = store.divisions_frame()
        elif args.kind == "projects":
            gdf = store.projects_frame()
        else:
            gdf = store.patches_frame(round_name=args.round_name)
    path = write_vector(gdf, args.output)
    print(f"exported {len(gdf)} {args.kind} to {path}")
    return 0
