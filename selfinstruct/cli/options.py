"""Options that several commands share, defined once so that every command reads them the same way."""
from __future__ import annotations

import click


def _parse_columns(ctx, param, value):
    from ..data.columns import parse_columns

    try:
        return parse_columns(value) or None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


columns_option = click.option(
    "--columns", callback=_parse_columns, metavar="OURS=THEIRS,...",
    help="Read the data's own column names as ours, e.g. instruction=question,output=answer. Ours: instruction, "
         "input, output, messages, conversations, prompt, completion (axolotl's field_instruction etc. too); "
         "a row that already has our name keeps it.")
