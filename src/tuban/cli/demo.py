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
    p.add_argument("--port", type=int, default=8000, help="web port when serving (default 8000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.demo import format_summary, run_demo, serve_hook
    from tuban.workspace import resolve_workspace_dir

    result = run_demo(resolve_workspace_dir(args.workspace or "demo-workspace"), size=args.size, seed=args.seed)
    print(format_summary(result))
    if not args.no_serve and not serve_hook(result.workspace, port=args.port):
        print("the web app is not available yet: the workspace is ready for `tuban serve` once it lands")
    return 0
