"""`eval`: the evaluation stage's command."""
from __future__ import annotations

import click

from .options import columns_option

@click.command("eval")
@click.option("--model", "models", multiple=True, required=True,
              help="Model to evaluate (repeat for A, B, ...): embedded, smollm2, a checkpoint folder or a hub id.")
@click.option("--name", "names", multiple=True,
              help="What the reports call each --model, in order (repeat once per --model). Default: the "
                   "folder's last part (runs/tuned -> tuned), or the name as given.")
@click.option("--data", default="packaged", show_default=True, type=click.Path(),
              help="Rows with references (JSON, JSONL, .gz or Parquet): Alpaca, Self-Instruct, single-turn chat "
                   "'messages' or ShareGPT rows (e.g. a train run's val.jsonl), a `generate` folder or an "
                   "`export --format hf` folder; 'packaged' is the 162 held-out tasks that ship with selfinstruct.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder for results.jsonl, metrics.json, report.md, report.html (never overwritten).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate a seeded sample of N rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --limit sampling (and sampling).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most tokens per answer; an answer that hits it counts as runaway.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Prompts generated together (left padding).")
@click.option("--template", type=click.Choice(["alpaca", "chat"]), default="alpaca", show_default=True,
              help="Prompt format; use the one the model was trained with.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0 = greedy decoding.")
@click.option("--judge", default=None,
              help="Teacher spec (e.g. openai:gpt-4o-mini) for a pairwise A/B judgement of the first two models.")
@click.option("--judge-base-url", default=None,
              help="OpenAI-compatible server URL for an openai:MODEL judge (else OPENAI_BASE_URL, else OpenAI).")
@click.option("--judge-api-key", default=None,
              help="API key for an openai:MODEL judge; prefer the OPENAI_API_KEY environment variable. "
                   "Never written to disk.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Rows with the largest ROUGE-L gains and losses of the second model over the first "
                   "(ties are counted, not shown) in the reports.")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
@columns_option
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folders.")
def eval_cmd(models, names, data, out, limit, seed, max_new_tokens, batch_size, template, temperature, judge,
             judge_base_url, judge_api_key, examples, skip_invalid, columns, trust_remote_code):
    """Answer each row with each model and score the answers (ROUGE-L, exact match, failure shares)."""
    from ..evaluation.evaluate import run_eval
    from ..data.evalset import resolve_eval_data

    run_eval(list(models), resolve_eval_data(data), out, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
             batch_size=batch_size, template=template, temperature=temperature, judge=judge,
             judge_base_url=judge_base_url, judge_api_key=judge_api_key,
             examples=examples, skip_invalid=skip_invalid, trust_remote_code=trust_remote_code, columns=columns,
             names=names,
             log=lambda m: click.echo(m, err=True))
    click.echo(f"{out}/report.md\n{out}/report.html")
