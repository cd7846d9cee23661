"""``tuban detect BEFORE AFTER -o patches.gpkg``: two dates → disturbance patches (GeoPackage layer ``patches``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from tuban.cli import add_workspace_option

    p = sub.add_parser("detect", help="detect disturbance patches between two dates of imagery")
    p.add_argument("before", metavar="BEFORE",
                   help="earlier scene: GeoTIFF/COG, band folder, .SAFE, Landsat folder, STAC JSON, or a .SAFE.zip / "
                        "Landsat .tar as downloaded")
    p.add_argument("after", metavar="AFTER", help="later scene")
    p.add_argument("-o", "--output", required=True, metavar="GPKG", help="output GeoPackage (layer 'patches')")
    p.add_argument("--sensor", help="sensor profile: sentinel2, landsat5/7/8/9, gf, rgb, generic")
    p.add_argument("--bands", help="band roles of a multi-band file in order, e.g. blue,green,red,nir,swir1,swir2")
    p.add_argument("--aoi", metavar="FILE",
                   help="area of interest (Shapefile/.zip, GeoPackage, GeoJSON, KML): only its part of the scenes "
                        "is read, and patches are clipped to it")
    p.add_argument("--aoi-crs", metavar="CRS",
                   help="the AOI file's CRS when it has none, or its real one when it is labelled WGS84: gcj02 "
                        "(boundaries from Chinese web maps), bd09, wgs84, cgcs2000 or EPSG:n")
    p.add_argument("--method", help="change method: construction (default), rgb, cva, expr:<index expression>")
    p.add_argument("--threshold", type=float, help="manual score threshold (default: automatic: Otsu, never below the no-change floor)")
    p.add_argument("--mmu-ha", type=float, default=0.04, help="minimum mapping unit in hectares (default 0.04)")
    p.add_argument("--tile-size", type=int, default=2048, help="tile size in pixels (default 2048)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, help="local Dask cluster of N worker processes")
    group.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask.distributed scheduler")
    p.add_argument("--baseline", metavar="EARLIER", help="a third, earlier scene that suppresses seasonal change")
    p.add_argument("--resolution", type=float, help="analysis grid resolution in CRS units")
    p.add_argument("--crs", help="analysis grid CRS (EPSG:n)")
    p.add_argument("--no-masks", action="store_true", help="skip the cloud/shadow masks")
    p.add_argument("--reflectance-scale", type=float, metavar="S",
                   help="DN × S = reflectance 0–1, for imagery whose sensor profile and files do not say (e.g. 0.0001 "
                        "for GF-1/2/6 delivered as reflectance × 10000); the spectral cloud/shadow tests need it")
    p.add_argument("--dn-offset", type=float, metavar="N",
                   help="what the products added to every DN, subtracted on reading, when the files do not say "
                        "(1000 for Sentinel-2 of processing baseline 04.00 and later, from 25 January 2022; "
                        "7272.7 for Landsat Collection 2 Level-2, which --sensor landsat8 etc. assume; 0 for "
                        "other Landsat reflectance)")
    p.add_argument("--mask-water", action="store_true", help="exclude water on both dates")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    add_workspace_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from tuban.detect.engine import detect
    from tuban.detect.output import read_aoi, write_patches
    from tuban.raster.profiles import parse_band_roles

    tty = sys.stderr.isatty()
    last = {"t": 0.0}

    def progress(label: str, done: int, total: int) -> None:
        if args.quiet:
            return
        if tty:  # one line rewritten in place
            if done == total or done % max(1, total // 20) == 0:
                print(f"\r{label}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr,
                      flush=True)
            return
        now = time.monotonic()  # logs and pipes: a plain line every 10 s, and at the end of each pass
        if done == total or now - last["t"] >= 10:
            last["t"] = now
            print(f"{label}: {done}/{total} ({done / max(total, 1):.0%})", file=sys.stderr, flush=True)

    aoi = read_aoi(args.aoi, crs=args.aoi_crs) if args.aoi else None
    res = detect(args.before, args.after, baseline=args.baseline, sensor=args.sensor,
                 bands=parse_band_roles(args.bands), method=args.method, threshold=args.threshold,
                 mmu_ha=args.mmu_ha, tile_size=args.tile_size, workers=args.workers, scheduler=args.scheduler,
                 resolution=args.resolution, crs=args.crs, aoi=aoi, masks=not args.no_masks,
                 water=args.mask_water, progress=progress, reflectance_scale=args.reflectance_scale,
                 dn_offset=args.dn_offset)
    unmasked = [name for key, name in (("b", "before"), ("a", "after"), ("0", "baseline"))
                if res.clouds.get(key) == "none"]
    if unmasked:
        print(f"warning: clouds not masked on the {' and '.join(unmasked)} date: no QA band and no reflectance "
              "scale (DN of unknown scale); pass --reflectance-scale when the DN are reflectance (0.0001 for "
              "reflectance × 10000; 8-bit display images are not)",
              file=sys.stderr)
    write_patches(res, args.output)
    area = float(res.patches["QAREA"].sum()) if len(res.patches) else 0.0
    print(f"{len(res.patches)} patches, {area:.2f} ha, method {res.method}, threshold {res.threshold:.3f} ({res.stats.threshold_rule}), "
          f"unobservable {res.unobservable_fraction:.1%} → {args.output}")
    return 0
