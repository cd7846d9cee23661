"""``tuban demo [--workspace DIR] [--size small|medium] [--no-serve]``."""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the Jiaozuo demo region, run the pipeline, create demo accounts")
    add_workspace_option(p)
    p.add_argument("--size", choices=("tiny", "small", "medium"), default="small", help="scene size (default small)")
    p.add_argument("--seed", type=int, default=2024, help="scene seed (default 2024)")
    p.add_argument("--no-serve", action="store_true", help="stop after the pipeline and print the summary")
    p.add_argument("--host", default="127.0.0.1", help="web address when serving (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="web port when serving (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering the scene (same bytes for any)")
    p.add_argument("--no-compare", action="store_true",
                   help="skip the comparison run of the detector on the two dates alone")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.demo import format_summary, run_demo, serve_hook
    from tuban.workspace import resolve_workspace_dir

    result = run_demo(resolve_workspace_dir(args.workspace or "demo-workspace"), size=args.size, seed=args.seed,
                      workers=args.workers, compare=not args.no_compare)
    print(format_summary(result), flush=True)
    if not args.no_serve and not serve_hook(result.workspace, host=args.host, port=args.port):
        print("the web app is not available: the workspace is ready for `tuban serve` once it lands")
    return 0
