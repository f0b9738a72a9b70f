"""``vitalwatch users``: dashboard users (bcrypt-hashed, in MongoDB) and their roles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vitalwatch.cli._common import admin_db, read_password
from vitalwatch.cli._console import console, fail, print_out, settings

app = typer.Typer(help="Dashboard users (bcrypt-hashed, in MongoDB) and their roles.", no_args_is_help=True)


@app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="login name (lower-case)")],
    role: Annotated[str, typer.Option(help="clinician, nurse, analyst or admin (conf: dashboard.roles)")],
    display_name: Annotated[str, typer.Option(help="name shown in the app")] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    reset: Annotated[bool, typer.Option(help="replace the password and role of an existing user")] = False,
) -> None:
    """Create a dashboard user (the source project's create_users). The password is asked for
    (twice) unless --password-stdin; only its bcrypt hash is stored."""
    from vitalwatch.dashboard import auth

    s = settings()
    pw = read_password(password_stdin, confirm=True)
    # an unacceptable name, role or password: auth.AuthError, exit 2 (the CLI's error handler)
    if not auth.create_user(admin_db(s), s, username, pw, role, display_name, replace=reset):
        fail(f"user {username!r} exists (use --reset to replace its password and role)")
    console.log(f"user {username} ({role}) {'updated' if reset else 'created'}")


@app.command("list")
def users_list() -> None:
    """Dashboard users and their roles (no hashes)."""
    from vitalwatch.dashboard import auth

    t = Table("user", "role", "name", "active", "created")
    for u in auth.list_users(admin_db(settings())):
        t.add_row(u["_id"], u.get("role", ""), u.get("display_name", ""), str(u.get("active", True)),
                  str(u.get("created_time", "")))
    print_out(t, width=160)


@app.command("deactivate")
def users_deactivate(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Stop a user from logging in (kept for the audit trail of their acknowledgements)."""
    from vitalwatch.dashboard import auth

    if not auth.set_active(admin_db(settings()), username, False):
        fail(f"no user {username!r}")
    console.log(f"user {username} deactivated")
