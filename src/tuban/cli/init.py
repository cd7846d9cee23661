"""``tuban init DIR``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a workspace (config, SQLite store, blob folder)")
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help="workspace folder (default: --workspace)")
    p.add_argument("--workspace", "-w", metavar="DIR", default=None, help=argparse.SUPPRESS)
    p.add_argument("--name", default=None, help="workspace display name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.store import open_store
    from tuban.workspace import init_workspace, resolve_workspace_dir

    ws = init_workspace(resolve_workspace_dir(args.dir or args.workspace), name=args.name)
    with open_store(ws.database_url) as store:
        store.upgrade()
    print(f"workspace ready: {ws.root}")
    print(f"store: {ws.database_url.split('@')[-1]}")
    return 0
