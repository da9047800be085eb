"""`filter` and `export`: the data stage's commands."""
from __future__ import annotations

import click

from ..data.writers import OutputError
from .options import columns_option

@click.command("filter")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the kept rows here (JSONL, gzip when it ends in .gz, - for stdout; must not exist).")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the rejected rows, each with a 'reason' (JSONL, as --out; must not exist).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Reject an instruction whose ROUGE-L F1 with a kept or --against one is above this.")
@click.option("--against", "against_paths", multiple=True, type=click.Path(),
              help="Instructions to compare against but not output (seed tasks, an earlier set; any source INPUT "
                   "takes, or 'packaged' for the packaged 175 seed tasks). Repeatable.")
@click.option("--no-heuristics", is_flag=True,
              help="Only the similarity and exact-duplicate checks; skip length/blacklist/etc. rules.")
@click.option("--tokenizer", type=click.Choice(["rouge", "unicode"]), default="rouge", show_default=True,
              help="rouge: rouge-score's (ASCII words only). unicode: words in any script, CJK per character; "
                   "also turns off the English-only rules.")
@click.option("--blacklist", default=None, metavar="WORD,...",
              help="Comma-separated words that mark tasks a text model cannot do (replaces the default "
                   "list: image, graph, file, map, draw, plot, go to, video, audio, ...; '' for none).")
@click.option("--exact-above", "floor", type=click.FloatRange(0, 1), default=None,
              help="Report kept rows' similarity exactly when above this (else null). Default: 0 "
                   "(always exact) up to 10,000 rows, else the threshold (fastest).")
@click.option("--skip-invalid", is_flag=True, help="Skip malformed rows (and count them) instead of stopping.")
@columns_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--decontaminate", "eval_paths", multiple=True, type=click.Path(), metavar="EVAL",
              help="Reject rows that leak a row of this eval file (any file eval or train reads; 'packaged' "
                   "for the packaged eval set) as 'contaminated', naming the eval row and rule. Repeatable.")
@click.option("--include-seeds", "seeds_path", default=None, metavar="SEEDS",
              help="Put every instance of these seed tasks ('packaged' for the packaged 175) before INPUT's rows "
                   "and filter them alike, as the paper's fine-tuning data includes its seed tasks.")
def filter_cmd(input_path, out_path, rejected_path, threshold, against_paths, no_heuristics, tokenizer,
               blacklist, floor, skip_invalid, columns, no_progress, eval_paths, seeds_path):
    """Drop near-duplicate and unusable instructions (ROUGE-L + Self-Instruct heuristics).

    INPUT: Alpaca or Self-Instruct rows (JSON, JSONL, .gz or Parquet), a `generate` folder, or an
    `export --format hf` folder."""
    import os

    from ..data.filters import blacklist_words, filter_file, summary_lines
    from ..data.writers import check_writable, write_jsonl

    outs = [out_path] + ([rejected_path] if rejected_path else [])
    if rejected_path and os.path.abspath(rejected_path) == os.path.abspath(out_path):
        raise OutputError("--out and --rejected must be different files")
    for p in outs:
        check_writable(p)
    if floor is not None and floor > threshold:
        raise click.BadParameter("must be at most --threshold", param_hint="--exact-above")
    skipped: list = []
    kept, rejected, stats = filter_file(
        input_path, seeds=seeds_path, against_paths=against_paths, eval_paths=eval_paths,
        blacklist=blacklist_words(blacklist), floor=floor, threshold=threshold, skip_invalid=skip_invalid,
        skipped=skipped, tokenizer=tokenizer, heuristics=not no_heuristics, progress=not no_progress,
        columns=columns)
    write_jsonl(out_path, kept)
    if rejected_path:
        write_jsonl(rejected_path, rejected)
    stats["skipped_invalid"] = len(skipped)
    for err in skipped[:5]:
        click.echo(f"skipped: {err}", err=True)
    for line in summary_lines(stats, out_path, rejected_path):
        click.echo(line, err=True)


@click.command("export")
@click.argument("source", type=click.Path())
@click.option("--format", "fmt", required=True, metavar="FORMAT",
              help="alpaca, prompt-completion, messages, sharegpt, or hf (a folder datasets.load_dataset reads).")
@click.option("--out", required=True, type=click.Path(allow_dash=True),
              help="Output JSONL file (gzip when it ends in .gz, - for stdout), or folder for --format hf "
                   "(must not exist; never overwritten).")
@click.option("--template", type=click.Choice(["alpaca", "chat"]), default="alpaca", show_default=True,
              help="prompt-completion: render the prompt with the template `train --template` uses.")
@click.option("--model", default=None,
              help="prompt-completion with --template chat: the model whose chat template renders the prompt.")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
@columns_option
@click.option("--license", "license_id", default=None, metavar="ID",
              help="--format hf: the card's license, a Hub license id (apache-2.0, cc-by-4.0, other, ...). "
                   "Default: unknown (a teacher's terms of use may apply to its outputs).")
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="--format hf: the card's language, an ISO 639 code (repeatable). Default: en.")
def export_cmd(source, fmt, out, template, model, skip_invalid, columns, license_id, languages):
    """Write a generate run folder or a data file as FORMAT rows other tools read as they are.

    SOURCE: anything `train --data` reads (JSON, JSONL, .gz or Parquet rows; a `generate` or `export --format
    hf` folder)."""
    from ..data.export import export

    skipped: list = []
    res = export(source, fmt, out, template=template, model=model, skip_invalid=skip_invalid, skipped=skipped,
                 license=license_id, language=languages or ("en",), columns=columns)
    for err in skipped[:5]:
        click.echo(f"skipped: {err}", err=True)
    click.echo(f"{res['rows']} {fmt} rows -> {'stdout' if res['out'] == '-' else res['out']}"
               + (f" (skipped {len(skipped)} invalid)" if skipped else ""), err=True)


@click.command("select")
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the kept rows here (JSONL; must not exist).")
@click.option("--scores", "scores_path", type=click.Path(dir_okay=False), default=None,
              help="Write every row with its scores, kept flag, rank and reason here (JSONL; must not exist). "
                   "Default: beside --out, OUT.scores.jsonl.")
@click.option("--model", default=None,
              help="The causal LM that scores the rows: embedded (default), smollm2, or a model folder.")
@click.option("--by", type=click.Choice(["ifd", "ppl", "length", "rating"]), default="ifd", show_default=True,
              help="Rank rows for --keep-fraction by: ifd (highest first, as Li et al. 2023), ppl (lowest "
                   "response perplexity first), length (longest response first), rating (highest first; "
                   "needs --rate).")
@click.option("--keep-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Keep this share of all rows, best first by --by (default: every row that passes the "
                   "thresholds).")
@click.option("--reverse", is_flag=True,
              help="Rank the other way round for --keep-fraction (e.g. lowest IFD first).")
@click.option("--max-ifd", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Drop rows whose IFD is at least this (IFD >= 1: the instruction does not help predict "
                   "the response). 'inf' keeps every IFD.")
@click.option("--min-rating", type=click.FloatRange(1, 5), default=None,
              help="Drop rows the --rate model rated below this (AlpaGasus kept 4.5 and up).")
@click.option("--rate", "rate_spec", default=None, metavar="openai:MODEL",
              help="Also have this model rate each row 1-5 (templates/rate.txt), as AlpaGasus did.")
@click.option("--base-url", default=None, help="OpenAI-compatible server URL for --rate (e.g. http://127.0.0.1:8000/v1).")
@click.option("--api-key", default=None,
              help="API key for --rate; prefer the OPENAI_API_KEY environment variable. Never written to disk.")
@click.option("--concurrency", type=click.IntRange(1), default=16, show_default=True,
              help="--rate requests in flight at once.")
@click.option("--template", type=click.Choice(["alpaca", "chat"]), default="alpaca", show_default=True,
              help="Render rows as train --template does (chat rows need chat).")
@click.option("--max-length", type=click.IntRange(8), default=1024, show_default=True,
              help="Cut prompt + response at this many tokens, as train --max-length does.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Rows per forward pass.")
@click.option("--fp32", is_flag=True, help="Score in fp32 even where the CPU computes bf16.")
@click.option("--skip-invalid", is_flag=True, help="Skip malformed rows (and count them) instead of stopping.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def select_cmd(data_path, out_path, scores_path, model, by, keep_fraction, reverse, max_ifd, min_rating, rate_spec,
               base_url, api_key, concurrency, template, max_length, batch_size, fp32, skip_invalid, no_progress):
    """Score every row (IFD, response perplexity and length from a small LM; optionally an LLM's 1-5 rating)
    and keep the best."""
    import os

    from ..data.select import select_file, scores_path_for

    scores_path = scores_path or str(scores_path_for(out_path))
    if os.path.abspath(scores_path) == os.path.abspath(out_path):
        raise OutputError("--out and --scores must be different files")
    if (by == "rating" or min_rating is not None) and not rate_spec:
        raise click.BadParameter("needs --rate openai:MODEL", param_hint="--by rating" if by == "rating"
                                 else "--min-rating")
    if rate_spec and not rate_spec.startswith("openai:"):
        raise click.BadParameter(f"{rate_spec!r}: takes openai:MODEL", param_hint="--rate")
    lines = select_file(data_path, out_path, scores_path, model=model, by=by, keep_fraction=keep_fraction,
                        reverse=reverse, max_ifd=max_ifd, min_rating=min_rating, rate_spec=rate_spec,
                        base_url=base_url, api_key=api_key, concurrency=concurrency, template=template,
                        max_length=max_length, batch_size=batch_size, fp32=fp32, skip_invalid=skip_invalid,
                        progress=not no_progress, echo=lambda m: click.echo(m, err=True))
    for line in lines:
        click.echo(line, err=True)
