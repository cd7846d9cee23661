"""``tuban quicklook SCENE -o OUT.tif``: a scene's true-colour COG (真彩色影像) for the review map."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from tuban.cli import add_workspace_option

    p = sub.add_parser("quicklook", help="write a scene's red, green and blue bands as a true-colour COG (真彩色影像)",
                       description="The offline twin of the web app's imagery jobs (生成复核影像): any scene tuban "
                                   "detect reads (a multi-band file, a band folder, a .SAFE, a Landsat folder, a "
                                   "STAC item) becomes a 3-band COG that a round can show as its before or after "
                                   "imagery. The file appears whole or not at all.")
    p.add_argument("scene", metavar="SCENE", help="the scene")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="the COG to write")
    p.add_argument("--sensor", help="sensor profile: sentinel2, landsat5/7/8/9, gf, rgb, generic")
    p.add_argument("--bands", help="band roles of a multi-band file in order, e.g. blue,green,red,nir")
    p.add_argument("--like", metavar="OTHER", help="write on this other scene's finest grid (e.g. the other date's, "
                                                   "so both images line up pixel for pixel); default the scene's own")
    add_workspace_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.raster.grid import finest_grid
    from tuban.raster.profiles import parse_band_roles
    from tuban.raster.quicklook import true_colour
    from tuban.raster.scene import open_scene

    scene = open_scene(args.scene, sensor=args.sensor, bands=parse_band_roles(args.bands))
    g = finest_grid(open_scene(args.like) if args.like else scene)
    out = true_colour(scene, args.output, grid=g)
    print(f"{out}: true colour (red, green, blue), {g.width}×{g.height} px")
    return 0
