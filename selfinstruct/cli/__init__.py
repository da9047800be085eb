"""Command line: thin click commands over the library, one module per stage.

Every user-facing failure (bad input file, unloadable model, unwritable output)
is one line on stderr and exit code 2; no traceback.
"""
from __future__ import annotations

import errno
import sys

import click

from ..models import ModelError
from ..data.formatting import TemplateError
from ..data.records import InputError
from ..data.writers import OutputError
from ..teachers import TeacherError
from .data import export_cmd, filter_cmd, select_cmd
from .evaluation import eval_cmd
from .generation import answer_cmd, generate, report_cmd
from .training import train_cmd

USER_ERRORS = (InputError, OutputError, ModelError, TeacherError, TemplateError)


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except Exception as e:  # a full disk: safetensors raises its own error type, not OSError
            if getattr(e, "errno", None) != errno.ENOSPC and "No space left on device" not in str(e):
                raise
            click.echo(f"error: no space left on device ({e}); free some and rerun", err=True)
            sys.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfinstruct")
def main():
    """Grow an instruction dataset with Self-Instruct, clean it, and fine-tune on it."""


for _command in (generate, answer_cmd, filter_cmd, select_cmd, export_cmd, train_cmd, eval_cmd, report_cmd):
    main.add_command(_command)
