"""Command line: thin click commands over the library.

Every user-facing failure (bad input file, unloadable model, unwritable output)
is one line on stderr and exit code 2; no traceback.
"""
from __future__ import annotations

import sys

import click

from .models import ModelError
from .records import InputError, OutputError

USER_ERRORS = (InputError, OutputError, ModelError)


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfinstruct")
def main():
    """Grow an instruction dataset with Self-Instruct, clean it, and fine-tune on it."""


# ----------------------------------------------------------------- filter (issue 3)

# ----------------------------------------------------------------- generate (issue 4)

# ----------------------------------------------------------------- train (issue 5)

# ----------------------------------------------------------------- eval, report (issue 6)


if __name__ == "__main__":  # pragma: no cover
    main()
