"""The `soak` command line: thin wrappers that parse options and call the library.

Each subcommand lives in its own module and is imported only when used, so
`soak classify` never pays for QEMU or Prometheus imports. Every SoakError is
shown as one line, ``Type: message``, and exits with the error's exit code:
0 clean, 1 failures found, 2 usage or profile error, 3 soak itself failed.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from soak import __version__
from soak.errors import SoakError

COMMANDS: dict[str, str] = {
    "run": "soak.cli.run:run",
    "summary": "soak.cli.summary:summary",
    "doctor": "soak.cli.doctor:doctor",
    "profile": "soak.cli.profile:profile",
    "image": "soak.cli.image:image",
    "classify": "soak.cli.classify:classify",
    "history": "soak.cli.history:history",
    "report": "soak.cli.report:report",
    "compare": "soak.cli.compare:compare",
}
"""Subcommand name -> "module:attribute" of its click command."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="soak")
def cli() -> None:
    """Soak many QEMU guests under load and faults; record every failure."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and map soak's errors to exit codes."""
    try:
        return cli.main(args=argv, prog_name="soak", standalone_mode=False)
    except click.exceptions.Abort:
        Console(stderr=True).print("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SoakError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}"
        )
        sys.exit(exc.exit_code)
    except Exception:  # a bug in soak: exit 3 (soak failed), never 1 (which means guest failures)
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            "[bold red]soak internal error[/] (please report it with this trace):"
        )
        traceback.print_exc()
        sys.exit(3)
