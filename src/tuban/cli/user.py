"""``tuban user add USERNAME --role ROLE[:DIVISION] …``."""

from __future__ import annotations

import argparse

from tuban.cli import add_workspace_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage users")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create a user with roles scoped to divisions")
    add.add_argument("username", metavar="USERNAME")
    add.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE[:DIVISION]",
        help="a role limited to a division code, e.g. county_reviewer:410811 (repeatable); without :DIVISION the role covers the whole province",
    )
    pw = add.add_mutually_exclusive_group(required=True)
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument(
        "--password", metavar="PW", help="the password (visible in the process list: prefer stdin)"
    )
    add.add_argument("--display-name", default=None, metavar="NAME")
    add_workspace_option(add)
    add.set_defaults(func=run_add)


def _parse_role(text: str) -> tuple[str, str | None]:
    role, _, division = text.partition(":")
    return role.strip(), (division.strip() or None)


def run_add(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from tuban.errors import UsageError
    from tuban.store import open_store
    from tuban.workspace import open_workspace

    if not args.role:
        raise UsageError("a user needs at least one --role ROLE[:DIVISION]", hint="e.g. --role viewer")
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else args.password
    ws = open_workspace(args.workspace)
    with open_store(ws.database_url) as store:
        store.check_revision()
        user_id = store.add_user(
            args.username,
            password,
            display_name=args.display_name,
            roles=[_parse_role(r) for r in args.role],
            actor=getpass.getuser() or "cli",
        )
    print(f"user {args.username} created (id {user_id})")
    return 0
