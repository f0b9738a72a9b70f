"""What every command shares: one rich ``console``, the settings, and one error handler.

Progress and messages go to ``console`` (standard error); results — tables, listings — to
standard output through :func:`print_out`, so they can be piped. Commands raise (or let
through) errors; :class:`Group` — the root command's class — turns the known ones into a red
line and an exit code, so no command repeats a try/except for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

if TYPE_CHECKING:
    from vitalwatch.config import Settings

console = Console(stderr=True)

# Library errors a user can act on: "module.Class" → exit code (named, so that the CLI's start
# imports none of their heavy modules). "failed" ones are prefixed with the command's name.
KNOWN_ERRORS: dict[str, tuple[int, bool]] = {
    "vitalwatch.infra.process.InfraError": (1, True),
    "vitalwatch.models.triage.TriageInputError": (2, False),
    "vitalwatch.dashboard.auth.AuthError": (2, False),
    "vitalwatch.localrun.RunFailed": (1, False),
}


def print_out(renderable: Any, width: int | None = None) -> None:
    """A result on standard output (a console made at call time: it sees the stdout of the
    moment, a test's included); ``width`` fixes the columns of a wide table."""
    Console(width=width).print(renderable)


@contextmanager
def progress(what: str) -> Iterator[Callable[[str], None]]:
    """A spinner saying ``what``; yields the ``say(str)`` a long step reports through: each line
    updates the spinner and is logged."""
    with console.status(what) as st:
        def say(line: str) -> None:
            st.update(line)
            console.log(line)

        yield say


class CliError(Exception):
    """A command's own refusal: the message is printed in red, the process exits ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``message`` (red, on stderr) and exit ``code``."""
    raise CliError(message, code)


def settings() -> Settings:
    """The settings every command reads, through ``vitalwatch.cli.get_settings`` (looked up at
    call time, so a test that patches that one name changes every command's)."""
    import vitalwatch.cli as cli

    return cli.get_settings()


def _command_path(group: TyperGroup, ctx: Any) -> str:
    """The words naming the sub-command this invocation runs (``infra up``)."""
    words, cmd = [], group
    for arg in [*getattr(ctx, "_protected_args", []), *ctx.args]:
        sub = cmd.get_command(ctx, arg) if isinstance(cmd, TyperGroup) else None
        if sub is None:
            break
        words.append(arg)
        cmd = sub
    return " ".join(words)


class Group(TyperGroup):
    """The root command: runs the sub-command and is the one error handler of the CLI."""

    def invoke(self, ctx: Any) -> Any:
        path = _command_path(self, ctx)
        try:
            return super().invoke(ctx)
        except CliError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(e.code) from e
        except Exception as e:
            known = KNOWN_ERRORS.get(f"{type(e).__module__}.{type(e).__qualname__}")
            if known is None:
                raise
            code, prefixed = known
            console.print(f"[red]{path} failed:[/red] {e}" if prefixed else f"[red]{e}[/red]")
            raise typer.Exit(code) from e
