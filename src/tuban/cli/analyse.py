"""``tuban analyse PATCHES --scopes SCOPES --divisions DIVISIONS [--previous PREVIOUS] -o OUT.gpkg``
or, on the workspace store, ``tuban analyse --round NAME [--previous-round NAME]``."""

from __future__ import annotations

import argparse
from typing import Any

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyse",
        help="compliance (R1–R5), counties and change type of patches against project scopes",
        description=(
            "Overlay disturbance patches with project scopes, divisions and the previous round. "
            "The output GeoPackage keeps every input patch (by QDNM) and adds BYD, RULE_ID, QAREA, EAREA, "
            "QDTYPE, XZQDM, PRID, PRNM, NUMBERS (JSON) and the explanations; layers 'completed' (完工) and "
            "'lineage' are added when --previous is given. With --round the round in the workspace store "
            "is analysed against its projects and divisions (in the database on PostgreSQL) and the results "
            "are written there: fields, suspected decisions, lineage and audit, in one transaction."
        ),
    )
    p.add_argument("patches", metavar="PATCHES", nargs="?", default=None,
                   help="patch file (QDNM …): .gpkg, .shp, .zip, .geojson, .kml (not with --round)")
    p.add_argument("--scopes", metavar="SCOPES",
                   help="project scopes (SWC_P_ID, PRO_NAME, CS_UNIT, RP_NUM, RP_TIME, VEC_TYPE)")
    p.add_argument("--divisions", metavar="DIVISIONS", help="county polygons (XZQDM, XZQMC)")
    p.add_argument("--previous", metavar="PREVIOUS", default=None, help="previous round's patches (QDNM)")
    p.add_argument("-o", "--output", metavar="OUT.gpkg", help="output file (.gpkg)")
    p.add_argument("--round", dest="round_name", metavar="NAME", default=None,
                   help="analyse this round of the workspace store instead of files")
    p.add_argument("--previous-round", metavar="NAME", default=None,
                   help="with --round: the previous round (QDTYPE, lineage, 完工)")
    p.add_argument("--engine", choices=("auto", "shapely", "postgis"), default="auto",
                   help="with --round: auto = in the database on PostgreSQL, shapely on SQLite")
    p.add_argument("--overwrite-reviewed", action="store_true",
                   help="with --round: also overwrite the fields of patches already past office review")
    p.add_argument("--crs", default=None, metavar="CRS",
                   help="CRS of all inputs when the files have none, or overriding a WGS84 label: "
                        "gcj02|bd09|wgs84|cgcs2000|EPSG:n")
    for layer in ("patches", "scopes", "divisions", "previous"):
        p.add_argument(f"--{layer}-crs", default=None, metavar="CRS", help=f"CRS of {layer} only (beats --crs)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="threads for the geometry work (default: all cores available)")
    p.add_argument("--rules", default=None, metavar="FILE", help="rules file (default: the packaged rules-v1.toml)")
    add_workspace_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.errors import UsageError

    if args.round_name is not None:
        return run_round(args)
    if args.previous_round is not None:
        raise UsageError("--previous-round needs --round", hint="for files use --previous PREVIOUS")
    missing = [flag for flag, value in (("PATCHES", args.patches), ("--scopes", args.scopes),
                                        ("--divisions", args.divisions), ("-o", args.output)) if value is None]
    if missing:
        raise UsageError(f"analysing files needs {', '.join(missing)}",
                         hint="tuban analyse PATCHES --scopes S --divisions D -o OUT.gpkg, or --round NAME")
    return run_files(args)


def run_round(args: argparse.Namespace) -> int:
    import getpass

    from tuban.analysis import load_rules
    from tuban.analysis.parallel import default_workers
    from tuban.errors import UsageError
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    given = [flag for flag, value in (("PATCHES", args.patches), ("--scopes", args.scopes),
                                      ("--divisions", args.divisions), ("--previous", args.previous),
                                      ("-o", args.output)) if value is not None]
    if given:
        raise UsageError(f"--round analyses the workspace store; {', '.join(given)} cannot be used with it",
                         hint="drop the file arguments, or drop --round to analyse files")
    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        store.check_revision()
        out = store.analyse_round(args.round_name, previous_round=args.previous_round,
                                  actor=getpass.getuser() or "cli", engine=args.engine,
                                  rules=load_rules(args.rules), workers=args.workers or default_workers(),
                                  overwrite_reviewed=args.overwrite_reviewed)
    print(f"round {out.round_name}: {out.patches} patches analysed ({out.engine}, {out.work_crs}, "
          f"rules v{out.rules_version}): " + ", ".join(f"{k} {v}" for k, v in out.rules.items()))
    print(f"fields updated: {out.updated}; kept (already reviewed): {out.kept_reviewed}; "
          f"suspected decisions: {out.decisions}")
    if out.previous_round is not None:
        print(f"previous round {out.previous_round}: lineage links {out.lineage}; completed (完工): "
              f"{len(out.completed)}; " + ", ".join(f"{k} {v}" for k, v in out.qdtype.items()))
    return 0


def run_files(args: argparse.Namespace) -> int:
    import pyogrio

    from tuban.analysis import analyse, load_rules
    from tuban.analysis.parallel import default_workers
    from tuban.errors import UsageError
    from tuban.io import read_vector, write_vector

    if not str(args.output).lower().endswith(".gpkg"):
        raise UsageError(f"output {args.output!r} must be a GeoPackage", hint="name it OUT.gpkg")

    def read(path: str | None, layer: str) -> Any:
        if path is None:
            return None
        crs = getattr(args, f"{layer}_crs") or args.crs
        return read_vector(path, crs=crs, allow_empty=(layer == "scopes"))

    result = analyse(
        read(args.patches, "patches"),
        read(args.scopes, "scopes"),
        read(args.divisions, "divisions"),
        read(args.previous, "previous"),
        rules=load_rules(args.rules),
        workers=args.workers or default_workers(),
    )
    frame = result.to_geodataframe()
    write_vector(frame, args.output, layer="patches")
    if args.previous is not None:
        pyogrio.write_dataframe(result.completed(), args.output, layer="completed", driver="GPKG")
        pyogrio.write_dataframe(result.lineage(), args.output, layer="lineage", driver="GPKG")
    counts = frame["RULE_ID"].value_counts().sort_index()
    print(f"{len(frame)} patches analysed in {result.work_crs.name} (rules v{result.rules.version}): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.previous is not None:
        print(f"completed (完工): {len(result.completed())}; lineage links: {len(result.lineage())}")
    print(f"written: {args.output}")
    return 0
