"""``tuban import divisions|projects|patches FILE``: argument parsing only.

The reading, CRS and field rules live in :mod:`tuban.io`; the one-transaction import in
:mod:`tuban.store`.
"""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option

CRS_HELP = "source CRS when the file has none (or labels GCJ-02/BD-09 data as WGS84): gcj02|bd09|wgs84|cgcs2000|EPSG:n"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help=".shp, .zip (one shapefile), .gpkg, .geojson or .kml")
    p.add_argument("--crs", default=None, metavar="CRS", help=CRS_HELP)
    p.add_argument(
        "--encoding",
        default=None,
        metavar="NAME",
        help="shapefile text encoding (default: .cpg, else UTF-8, else GBK)",
    )
    p.add_argument("--layer", default=None, metavar="NAME", help="layer of a multi-layer file (GeoPackage)")
    add_workspace_option(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import divisions, projects or a round's patches from a vector file")
    isub = p.add_subparsers(dest="import_kind", metavar="KIND", required=True)

    d = isub.add_parser("divisions", help="administrative divisions (行政区划): code and name per polygon")
    _common(d)
    d.add_argument(
        "--code-field", default=None, metavar="F", help="column holding the division code (default: auto)"
    )
    d.add_argument(
        "--name-field", default=None, metavar="F", help="column holding the division name (default: auto)"
    )
    d.set_defaults(func=run, kind="divisions")

    pr = isub.add_parser("projects", help="projects with their scopes (防治责任范围), official fields")
    _common(pr)
    pr.set_defaults(func=run, kind="projects")

    pa = isub.add_parser("patches", help="a round's disturbance patches (扰动图斑), official fields")
    _common(pa)
    pa.add_argument(
        "--round", required=True, metavar="NAME", dest="round_name", help="the round, e.g. 2024-1"
    )
    pa.set_defaults(func=run, kind="patches")


def run(args: argparse.Namespace) -> int:
    import getpass
    from pathlib import Path

    from tuban.io import import_report, read_vector, to_official
    from tuban.io.safezip import ZipLimits
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    ws = open_workspace(args.workspace)
    limits = ZipLimits(
        max_total_bytes=ws.limit("zip_uncompressed_bytes"), max_ratio=float(ws.limit("zip_ratio"))
    )
    gdf = read_vector(
        args.file,
        crs=args.crs,
        encoding=args.encoding,
        layer=args.layer,
        max_features=ws.limit("features_per_import"),
        max_vertices=ws.limit("vertices_per_geometry"),
        allow_empty=args.kind == "projects",
        zip_limits=limits,
    )
    official = to_official(
        gdf,
        args.kind,
        code_field=getattr(args, "code_field", None),
        name_field=getattr(args, "name_field", None),
    )
    actor = getpass.getuser() or "cli"
    source = Path(args.file).name
    with open_store(ws.database_url) as store:
        store.check_revision()
        if args.kind == "divisions":
            n = store.import_divisions(official, actor=actor, source=source)
        elif args.kind == "projects":
            n = store.import_projects(official, actor=actor, source=source)
        else:
            n = store.import_patches(official, round_name=args.round_name, actor=actor, source=source)
    report = import_report(official)
    if report is not None:
        print(f"read {report.summary()}")
        for item in report.geometry.repaired[:20]:
            print(
                f"  repaired {item.record}: {item.reason}; area {item.area_before_ha:.4f} -> {item.area_after_ha:.4f} ha"
            )
    where = f" into round {args.round_name}" if args.kind == "patches" else ""
    print(f"imported {n} {args.kind}{where}")
    return 0
