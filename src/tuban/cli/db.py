"""``tuban db upgrade``, ``tuban db current`` and ``tuban db grant-app``."""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database schema: upgrade, current revision")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dbsub.add_parser(
        "upgrade", help="migrate the store to the latest schema and seed code lists and roles"
    )
    add_workspace_option(up)
    up.set_defaults(func=run_upgrade)
    cur = dbsub.add_parser("current", help="print the store's schema revision and the one this tuban needs")
    add_workspace_option(cur)
    cur.set_defaults(func=run_current)
    grant = dbsub.add_parser(
        "grant-app", help="PostgreSQL: give an existing login role what the web app and workers need, the audit "
                          "log append-only (run as the tables' owner; again after upgrades is harmless)")
    grant.add_argument("role", help="the login role the web app and workers connect as")
    add_workspace_option(grant)
    grant.set_defaults(func=run_grant_app)


def run_upgrade(args: argparse.Namespace) -> int:
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    print(f"database at revision {after} (was {before or 'empty'})")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        current, head = store.current_revision(), store.head_revision()
    state = "up to date" if current == head else "behind: run `tuban db upgrade`"
    print(f"current: {current or 'empty'}  head: {head}  ({state})")
    return 0


def run_grant_app(args: argparse.Namespace) -> int:
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        granted = store.grant_app_role(args.role)
    for table, privs in granted.items():
        print(f"{table}: {', '.join(privs)}")
    print(f"role {args.role} may use the store; the audit log is append-only for it. Connect the web app and "
          "workers as it (TUBAN_DATABASE_URL); keep the owner's URL for `tuban db upgrade`.")
    return 0
