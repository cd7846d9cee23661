"""``tuban serve [--host 127.0.0.1] [--port 8000]``: the review web app for a workspace."""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the review web app (内业复核网页) for the workspace")
    add_workspace_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--worker", action="store_true",
                   help="also run the detection and imagery jobs queued on the web (a thread of this process; elsewhere "
                        "`tuban worker` runs them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.web.serve import serve, settings_for_workspace

    settings = settings_for_workspace(args.workspace)
    print(f"tuban web app on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    serve(settings, host=args.host, port=args.port, worker=args.worker)
    return 0
