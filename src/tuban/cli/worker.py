"""``tuban worker [--once] [--lease S] [--workers N | --scheduler tcp://HOST:PORT]``: run the server's detection jobs."""

from __future__ import annotations

import argparse
import contextlib

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run the detection and imagery jobs queued through the web app (检测任务, 复核影像)",
                       description="Claim queued jobs of the workspace store one at a time and read their scenes "
                                   "from the workspace's imagery/ folder: a detection writes NAME.gpkg into its "
                                   "detections/ folder, an imagery job a true-colour NAME.tif into "
                                   "imagery/true-colour/. A job whose worker stops renewing its lease (killed, "
                                   "machine restarted) is taken by the next worker once the lease has run out.")
    add_workspace_option(p)
    p.add_argument("--once", action="store_true", help="run at most one job, then exit (0 also when none waited)")
    p.add_argument("--lease", type=float, default=60.0, metavar="S",
                   help="seconds a claim lasts without renewal; renewed every third of it (default 60)")
    p.add_argument("--poll", type=float, default=5.0, metavar="S", help="seconds between looks for a job (default 5)")
    par = p.add_mutually_exclusive_group()
    par.add_argument("--workers", type=int, default=None, metavar="N", help="each run on a local Dask cluster of N processes")
    par.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="each run on an existing Dask cluster")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuban.store import open_store
    from tuban.workflow.jobs import Worker
    from tuban.workspace import open_workspace

    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        store.check_revision()
        worker = Worker(store, imagery_dir=ws.imagery_dir, detection_dir=ws.detection_dir, lease_s=args.lease,
                        workers=args.workers, scheduler=args.scheduler)
        print(f"tuban worker {worker.owner}: jobs of {ws.root} (Ctrl-C to stop)", flush=True)
        if args.once:
            job = worker.run_once()
            print("no job waiting" if job is None else
                  f"job {job['id']} {job['state']}: {job['output']} {job['error'] or ''}".rstrip(), flush=True)
            return 0 if job is None or job["state"] == "done" else 1
        with contextlib.suppress(KeyboardInterrupt):
            worker.run(poll_s=args.poll)
    return 0
