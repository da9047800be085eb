"""Command line: thin click commands over the library.

Every user-facing failure (bad input file, unloadable model, unwritable output)
is one line on stderr and exit code 2; no traceback.
"""
from __future__ import annotations

import errno
import sys

import click

from .models import ModelError
from .data.records import InputError
from .data.writers import OutputError
from .teachers import TeacherError

USER_ERRORS = (InputError, OutputError, ModelError, TeacherError)


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


# ----------------------------------------------------------------- filter (issue 3)

@main.command("filter")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the kept rows here (JSONL; must not exist).")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False),
              help="Also write the rejected rows, each with a 'reason' (JSONL; must not exist).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Reject an instruction whose ROUGE-L F1 with a kept or --against one is above this.")
@click.option("--against", "against_paths", multiple=True, type=click.Path(),
              help="Instructions to compare against but not output (seed tasks, an earlier set). Repeatable.")
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
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--decontaminate", "eval_paths", multiple=True, type=click.Path(), metavar="EVAL",
              help="Reject rows that leak a row of this eval file (any file eval or train reads; 'packaged' "
                   "for the packaged eval set) as 'contaminated', naming the eval row and rule. Repeatable.")
@click.option("--include-seeds", "seeds_path", default=None, metavar="SEEDS",
              help="Put every instance of these seed tasks ('packaged' for the packaged 175) before INPUT's rows "
                   "and filter them alike, as the paper's fine-tuning data includes its seed tasks.")
def filter_cmd(input_path, out_path, rejected_path, threshold, against_paths, no_heuristics, tokenizer,
               blacklist, floor, skip_invalid, no_progress, eval_paths, seeds_path):
    """Drop near-duplicate and unusable instructions (ROUGE-L + Self-Instruct heuristics)."""
    import os

    from .data.filters import blacklist_words, filter_file, summary_lines
    from .data.writers import check_writable, write_jsonl

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
        skipped=skipped, tokenizer=tokenizer, heuristics=not no_heuristics, progress=not no_progress)
    write_jsonl(out_path, kept)
    if rejected_path:
        write_jsonl(rejected_path, rejected)
    stats["skipped_invalid"] = len(skipped)
    for err in skipped[:5]:
        click.echo(f"skipped: {err}", err=True)
    for line in summary_lines(stats, out_path, rejected_path):
        click.echo(line, err=True)


# ----------------------------------------------------------------- generate (issue 4)

@main.command()
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True,
              help="Total rounds for the run; on an existing --out, rounds already done count.")
@click.option("--seeds", "seeds_path", type=click.Path(), default=None,
              help="Seed tasks (Self-Instruct .jsonl or Alpaca .json/.jsonl). Default: the packaged 175 seeds.")
@click.option("--teacher", default="embedded", show_default=True,
              help="Teacher LLM: embedded (Gemma 3 270M, offline), smollm2, hf:PATH_OR_ID, openai:MODEL, or a folder.")
@click.option("--base-url", default=None, help="OpenAI-compatible server URL for openai:MODEL (e.g. http://127.0.0.1:8000/v1).")
@click.option("--api-key", default=None,
              help="API key for openai:MODEL; prefer the OPENAI_API_KEY environment variable. Never written to disk.")
@click.option("--endpoint", type=click.Choice(["chat", "completions"]), default="chat", show_default=True,
              help="openai:MODEL endpoint: chat messages, or plain completions for base models.")
@click.option("--concurrency", type=click.IntRange(1), default=16, show_default=True,
              help="Requests in flight at once (API teachers).")
@click.option("--request-timeout", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              help="Seconds to wait for one API response before retrying it (openai:MODEL).")
@click.option("--max-retries", type=click.IntRange(0), default=6, show_default=True,
              help="Retries per API request on 429/5xx/timeouts (exponential backoff); then it counts as failed.")
@click.option("--price-in", type=click.FloatRange(0), default=None,
              help="USD per 1M prompt tokens, to estimate cost (needs --price-out too).")
@click.option("--price-out", type=click.FloatRange(0), default=None, help="USD per 1M completion tokens.")
@click.option("--max-cost", type=float, default=None, metavar="USD",
              help="Stop before a request that could take the run's recorded cost (resumed runs included) over "
                   "this many dollars; needs --price-in/--price-out. Rerun with a higher cap to continue.")
@click.option("--dry-run", is_flag=True,
              help="Print the planned requests, tokens and cost per round as a range; send and write nothing.")
@click.option("--prompts-per-round", type=click.IntRange(1), default=None,
              help="Instruction-generation requests per round. Default: follows the teacher: 20 (selfinstruct) or "
                   "5 (alpaca) for openai:, 16 or 4 for local teachers (about a minute of a 2-core CPU).")
@click.option("--instances", type=click.IntRange(1, 5), default=5, show_default=True,
              help="At most this many input/output instances per task.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.7, show_default=True,
              help="Reject a candidate whose ROUGE-L to a seed or kept task is above this.")
@click.option("--style", type=click.Choice(["selfinstruct", "alpaca"]), default="selfinstruct", show_default=True,
              help="selfinstruct: the paper's staged loop; alpaca: instruction, input and output in one pass.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default outputs/<name>). An existing run folder is resumed.")
@click.option("--name", default=None, help="Run name for the default --out (default: a UTC timestamp).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for sampling prompts and the teacher.")
@click.option("--max-tokens", type=click.IntRange(16), default=512, show_default=True,
              help="Token limit per instruction-generation request (instance requests use at most 256).")
@click.option("--temperature", type=click.FloatRange(0), default=None,
              help="Sampling temperature of new instructions. Default: 0.7 (the paper's) for openai:, 1.0 for "
                   "local teachers.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Nucleus sampling top-p of new instructions. Default: 0.5 (the paper's) for openai:, 0.9 for "
                   "local teachers.")
@click.option("--repeat-penalty", type=click.FloatRange(0, min_open=True), default=None,
              help="Local llama.cpp teachers: penalty on new instructions repeating tokens of a sequence's last "
                   "64 (1 = off). Default: 1 (off).")
@click.option("--instance-temperature", type=click.FloatRange(0), default=None,
              help="Sampling temperature of the instance step. Default: 0.7.")
@click.option("--instance-top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Top-p of the instance step. Default: 0.5.")
@click.option("--instance-repeat-penalty", type=click.FloatRange(0, min_open=True), default=None,
              help="Local llama.cpp teachers: repeat penalty of the instance step. Default: 1.2 (1 = off).")
@click.option("--classify", "classify_with", type=click.Choice(["teacher", "rules"]), default=None,
              help="How tasks are sorted into classification (label-first instances) or not: the teacher's "
                   "few-shot Yes/No, or cue words. Default: teacher for openai:, rules for local teachers.")
@click.option("--engine", type=click.Choice(["auto", "llamacpp", "transformers"]), default="auto", show_default=True,
              help="Engine for the packaged local teachers (embedded, smollm2): llama.cpp when installed, "
                   "else transformers.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Local teachers: sequences generated together (llama.cpp: 16, transformers: 32 packaged, 8 hf:).")
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code for hf: teachers.")
@click.option("--skip-invalid", is_flag=True, help="Skip malformed seed rows (reported) instead of stopping.")
@click.option("--decontaminate", "eval_paths", multiple=True, type=click.Path(), metavar="EVAL",
              help="Also reject candidates that leak a row of this eval file (any file eval or train reads); "
                   "the packaged eval set is always checked. Repeatable.")
@click.option("--no-decontaminate", is_flag=True, help="Check candidates against no eval set at all.")
@click.option("--tokenizer", "rouge_tokenizer", type=click.Choice(["rouge", "unicode"]), default="rouge",
              show_default=True, help="ROUGE-L words, as in `filter`: rouge-score's (ASCII), or unicode for any "
                                      "script (also turns off the English-only rules).")
@click.option("--blacklist", default=None, metavar="WORD,...",
              help="Comma-separated words that mark tasks a text model cannot do (replaces the default list, "
                   "as in `filter`; '' for none).")
def generate(rounds, seeds_path, teacher, base_url, api_key, endpoint, concurrency, request_timeout, max_retries,
             price_in, price_out, max_cost, dry_run, prompts_per_round, instances, threshold, style, out_dir, name,
             seed, max_tokens, temperature, top_p, repeat_penalty, instance_temperature, instance_top_p,
             instance_repeat_penalty, classify_with, engine, batch_size, trust_remote_code,
             skip_invalid, eval_paths, no_decontaminate, rouge_tokenizer, blacklist):
    """Grow an instruction corpus from seed tasks with a teacher LLM (Self-Instruct)."""
    import datetime as dt
    from pathlib import Path

    from .generation.budget import Budget, BudgetReached, check_cost_options, dry_run_lines
    from .data.decontam import describe, load_index
    from .data.filters import blacklist_words
    from .generation.bootstrap import TOKEN_LIMITS, GenerateConfig, run, summary
    from .generation.journal import RunState
    from .data.seeds import load_seeds
    from .teachers import make_teacher

    problem = check_cost_options(max_cost, price_in, price_out)
    if problem:
        raise InputError(problem[0], None, problem[1])
    if no_decontaminate and eval_paths:
        raise click.UsageError("--decontaminate and --no-decontaminate exclude each other")
    evals = () if no_decontaminate else tuple(describe(["packaged", *eval_paths]))
    cfg = GenerateConfig(rounds=rounds, teacher=teacher, style=style, prompts_per_round=prompts_per_round,
                         instances=instances, threshold=threshold, seed=seed, max_tokens=max_tokens,
                         temperature=temperature, top_p=top_p, repeat_penalty=repeat_penalty, endpoint=endpoint,
                         instance_temperature=instance_temperature, instance_top_p=instance_top_p,
                         instance_repeat_penalty=instance_repeat_penalty, classify=classify_with,
                         base_url=base_url, seeds=seeds_path, price_in=price_in, price_out=price_out,
                         decontaminate=evals, tokenizer=rouge_tokenizer, blacklist=blacklist_words(blacklist))
    skipped = []
    seeds = load_seeds(seeds_path, skip_invalid=skip_invalid, skipped=skipped)
    for err in skipped:
        click.echo(f"skipped: {err}", err=True)
    decontam = load_index(evals) if evals else None  # a bad eval file fails before any model loads
    name = name or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    state = RunState(Path(out_dir) if out_dir else Path("outputs") / name, cfg.run_json(), seeds)
    if state.next_round > rounds:
        click.echo(f"{state.out}: all {rounds} round(s) already done; pass a larger --rounds to continue", err=True)
        return
    if dry_run:
        click.echo("\n".join(dry_run_lines(cfg, state, TOKEN_LIMITS, price_in=price_in, price_out=price_out,
                                            cap=max_cost)))
        return
    if max_cost is not None:
        cfg.budget = Budget(max_cost, price_in, price_out, state.stats)  # records the new cap
    else:
        state.stats.pop("budget", None)  # an earlier invocation's cap does not carry over
    t = make_teacher(teacher, base_url=base_url, api_key=api_key, endpoint=endpoint, concurrency=concurrency,
                     timeout=request_timeout, max_retries=max_retries, trust_remote_code=trust_remote_code,
                     seed=seed, engine=engine, batch_size=batch_size, repeat_penalty=cfg.repeat_penalty,
                     log=lambda m: click.echo(m, err=True))
    try:
        stats = run(t, cfg, state, echo=lambda m: click.echo(m, err=True), decontam=decontam)
    except BudgetReached as e:
        click.echo(f"{e}; everything kept is saved: run the same command with a higher --max-cost to continue "
                   f"{state.out}", err=True)
        return
    except KeyboardInterrupt:
        click.echo(f"interrupted; run the same command again to resume {state.out}", err=True)
        sys.exit(130)
    except TeacherError as e:
        raise TeacherError(f"{e}; what was kept is saved: run the same command again to resume "
                           f"{state.out}") from None
    finally:
        t.close()
    click.echo(summary(stats, state))


# ----------------------------------------------------------------- train (issue 5)

@main.command("train")
@click.option("--data", required=True, type=click.Path(),
              help="Training rows: Alpaca .json/.jsonl, Self-Instruct tasks, chat 'messages' rows, "
                   "or a `generate` output folder (its data.jsonl).")
@click.option("--model", default=None,
              help="Base model: embedded (default, Gemma 3 270M), smollm2, a local folder or a cached hub id.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (must be empty unless --resume): final model, checkpoints/, metrics, plot.")
@click.option("--epochs", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Passes over the training rows.")
@click.option("--max-steps", default=None, type=click.IntRange(min=1),
              help="Stop after this many optimizer steps (overrides --epochs).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Examples per device per micro-batch (packed into one row with --packing).")
@click.option("--max-batch-tokens", default=None, type=click.IntRange(min=0),
              help="Batch by tokens: up to N tokens per device per micro-batch (default 16384 on GPU; "
                   "0 = --batch-size examples, the CPU default).")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(min=1),
              help="Micro-batches per optimizer step.")
@click.option("--lr", default=2e-5, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate (AdamW, cosine decay).")
@click.option("--warmup-ratio", default=0.03, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Fraction of the steps with linear warmup.")
@click.option("--weight-decay", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="AdamW weight decay.")
@click.option("--max-length", default=1024, show_default=True, type=click.IntRange(min=8),
              help="Tokens per example; the response is cut first, rows with no response left are dropped.")
@click.option("--val-fraction", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Held-out rows for validation loss (deterministic hash split; 0 = none).")
@click.option("--template", default="alpaca", show_default=True, type=click.Choice(["alpaca", "chat"]),
              help="Prompt format: the Alpaca template, or the model's own chat template.")
@click.option("--packing/--no-packing", default=True, show_default=True,
              help="Pack each batch padding-free (position ids restart per example; attention never crosses "
                   "examples); --no-packing pads length-grouped batches.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations to save memory.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed for init, data order and the split.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint (same command, same options).")
@click.option("--eval-steps", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Validate every N steps (a value < 1 is a fraction of all steps); the best checkpoint is kept.")
@click.option("--save-steps", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Checkpoint every N steps (< 1: fraction); default: --eval-steps.")
@click.option("--logging-steps", default=10, show_default=True, type=click.IntRange(min=1),
              help="Log loss, learning rate and tokens/s every N steps (metrics.jsonl).")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folder.")
@click.option("--attn", default="auto", show_default=True,
              type=click.Choice(["auto", "flash_attention_2", "flex_attention", "sdpa", "eager"]),
              help="Attention kernel; auto: flash-attention varlen if installed, else flex attention "
                   "(GPU), else SDPA with a block-diagonal mask. The choice is printed.")
@click.option("--report-to", default="none", show_default=True,
              help="Also log to: tensorboard (events in OUT/tensorboard), wandb, mlflow or trackio; "
                   "comma-separated; none = only metrics.jsonl and loss.png.")
def train_cmd(**kw):
    """Fine-tune every parameter of a causal LM on instruction data (loss on responses only)."""
    from .training.train import TrainOptions, train

    s = train(TrainOptions(**kw))
    best = f", best validation loss {s['best_eval_loss']:.4f}" if s["best_eval_loss"] is not None else ""
    click.echo(f"trained {s['step']} steps, train loss {s['train_loss']:.4f}{best}; "
               f"dropped {s['dropped_truncated_train'] + s['dropped_truncated_val']} truncated rows, "
               f"skipped {s['skipped_invalid']} invalid; model in {s['out']}")


# ----------------------------------------------------------------- export (issue 12)

@main.command("export")
@click.argument("source", type=click.Path())
@click.option("--format", "fmt", required=True, metavar="FORMAT",
              help="alpaca, prompt-completion, messages, sharegpt, or hf (a folder datasets.load_dataset reads).")
@click.option("--out", required=True, type=click.Path(),
              help="Output JSONL file, or folder for --format hf (must not exist; never overwritten).")
@click.option("--template", type=click.Choice(["alpaca", "chat"]), default="alpaca", show_default=True,
              help="prompt-completion: render the prompt with the template `train --template` uses.")
@click.option("--model", default=None,
              help="prompt-completion with --template chat: the model whose chat template renders the prompt.")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
def export_cmd(source, fmt, out, template, model, skip_invalid):
    """Write a generate run folder or a data file as FORMAT rows other tools read as they are."""
    from .data.export import export

    skipped: list = []
    res = export(source, fmt, out, template=template, model=model, skip_invalid=skip_invalid, skipped=skipped)
    for err in skipped[:5]:
        click.echo(f"skipped: {err}", err=True)
    click.echo(f"{res['rows']} {fmt} rows -> {res['out']}" + (f" (skipped {len(skipped)} invalid)" if skipped else ""))


# ----------------------------------------------------------------- eval, report (issue 6)


@main.command("eval")
@click.option("--model", "models", multiple=True, required=True,
              help="Model to evaluate (repeat for A, B, ...): embedded, smollm2, a checkpoint folder or a hub id.")
@click.option("--data", default="packaged", show_default=True, type=click.Path(),
              help="Rows with references: Alpaca, Self-Instruct or single-turn chat `messages` JSON/JSONL "
                   "(e.g. a train run's val.jsonl); 'packaged' is the 162 held-out tasks that ship with selfinstruct.")
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
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folders.")
def eval_cmd(models, data, out, limit, seed, max_new_tokens, batch_size, template, temperature, judge,
             judge_base_url, judge_api_key, examples, skip_invalid, trust_remote_code):
    """Answer each row with each model and score the answers (ROUGE-L, exact match, failure shares)."""
    from .evaluation.evaluate import run_eval
    from .data.evalset import resolve_eval_data

    run_eval(list(models), resolve_eval_data(data), out, limit=limit, seed=seed, max_new_tokens=max_new_tokens,
             batch_size=batch_size, template=template, temperature=temperature, judge=judge,
             judge_base_url=judge_base_url, judge_api_key=judge_api_key,
             examples=examples, skip_invalid=skip_invalid, trust_remote_code=trust_remote_code,
             log=lambda m: click.echo(m, err=True))
    click.echo(f"{out}/report.md\n{out}/report.html")


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for report.md and the PNG plots [default: RUN_DIR/report].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in that folder.")
def report_cmd(run_dir, out, overwrite):
    """Report on a `selfinstruct generate` run: counts, rejections, lengths, similarity, verbs, cost."""
    from .generation.report import write_run_report

    path = write_run_report(run_dir, out, overwrite=overwrite)
    click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
