"""`generate`, `answer` and `report`: the generation stage's commands."""
from __future__ import annotations

import sys

import click

from ..data.records import InputError
from ..teachers import TeacherError
from .options import columns_option

DEFAULTS = (click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)


@click.command()
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True,
              help="Total rounds for the run; on an existing --out, rounds already done count.")
@click.option("--num-instructions", type=click.IntRange(1), default=None, metavar="N",
              help="Stop once N tasks are kept (the paper's --num_instructions_to_generate), or after --rounds, "
                   "whichever comes first; rerun with a larger N or --rounds to continue.")
@click.option("--seeds", "seeds_path", type=click.Path(), default=None,
              help="Seed tasks (Self-Instruct .jsonl or Alpaca .json/.jsonl). Default: the packaged 175 seeds.")
@click.option("--teacher", default="embedded", show_default=True,
              help="Teacher LLM: embedded (Gemma 3 270M, offline), smollm2, hf:PATH_OR_ID, gguf:FILE.gguf, "
                   "openai:MODEL, or a model folder.")
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
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed for sampling prompts and the teacher.")
@click.option("--max-tokens", type=click.IntRange(16), default=512, show_default=True,
              help="Token limit per instruction-generation request (instance requests use at most 256).")
@click.option("--temperature", type=click.FloatRange(0), default=None,
              help="Sampling temperature of new instructions. Default: 0.7 (the paper's) for openai:, 1.0 for "
                   "local teachers.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Nucleus sampling top-p of new instructions. Default: 0.5 (the paper's) for openai:, 0.9 for "
                   "local teachers.")
@click.option("--repeat-penalty", type=click.FloatRange(0, min_open=True), default=None,
              help="Local teachers (llama.cpp, transformers): penalty on new instructions repeating tokens of "
                   "their last 64 (1 = off; refused for openai: teachers). Default: 1 (off).")
@click.option("--instance-temperature", type=click.FloatRange(0), default=None,
              help="Sampling temperature of the instance step. Default: 0.7.")
@click.option("--instance-top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Top-p of the instance step. Default: 0.5.")
@click.option("--instance-repeat-penalty", type=click.FloatRange(0, min_open=True), default=None,
              help="Local teachers: repeat penalty of the instance step, greedy or sampled. Default: 1.2 "
                   "(1 = off; refused for openai: teachers).")
@click.option("--instance-samples", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Answers asked per task in the instance step, their examples pooled before cleaning.")
@click.option("--instance-demos", type=click.Choice(["random", "similar"]), default="random", show_default=True,
              help="Base teachers: the instance prompt's seed demonstrations are drawn once a round, or are the "
                   "seed tasks most similar to each task (ROUGE-L).")
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
@columns_option
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
def generate(rounds, num_instructions, seeds_path, teacher, base_url, api_key, endpoint, concurrency, request_timeout, max_retries,
             price_in, price_out, max_cost, dry_run, prompts_per_round, instances, threshold, style, out_dir, name,
             seed, max_tokens, temperature, top_p, repeat_penalty, instance_temperature, instance_top_p,
             instance_repeat_penalty, instance_samples, instance_demos, classify_with,
             engine, batch_size, trust_remote_code,
             skip_invalid, columns, eval_paths, no_decontaminate, rouge_tokenizer, blacklist):
    """Grow an instruction corpus from seed tasks with a teacher LLM (Self-Instruct)."""
    import datetime as dt
    from pathlib import Path

    from ..generation.budget import Budget, BudgetReached, check_cost_options, dry_run_lines
    from ..data.decontam import describe, load_index
    from ..data.filters import blacklist_words
    from ..generation.bootstrap import (TOKEN_LIMITS, GenerateConfig, penalty_problem, run, summary, target_line,
                                         target_reached)
    from ..generation.journal import RunState
    from ..generation.resume import PARAMS, previous_settings, resume_options
    from ..data.seeds import load_seeds
    from ..teachers import make_teacher

    problem = check_cost_options(max_cost, price_in, price_out) or \
        penalty_problem(teacher, repeat_penalty, instance_repeat_penalty)
    if problem:
        raise InputError(problem[0], None, problem[1])
    if no_decontaminate and eval_paths:
        raise click.UsageError("--decontaminate and --no-decontaminate exclude each other")
    evals = () if no_decontaminate else tuple(describe(["packaged", *eval_paths]))
    out = Path(out_dir) if out_dir else Path("outputs") / (name or dt.datetime.now(dt.timezone.utc)
                                                              .strftime("%Y%m%d-%H%M%S"))
    given = dict(rounds=rounds, num_instructions=num_instructions, teacher=teacher, style=style, prompts_per_round=prompts_per_round,
                 instances=instances, threshold=threshold, seed=seed, max_tokens=max_tokens, temperature=temperature,
                 top_p=top_p, repeat_penalty=repeat_penalty, endpoint=endpoint,
                 instance_temperature=instance_temperature, instance_top_p=instance_top_p,
                 instance_repeat_penalty=instance_repeat_penalty, instance_samples=instance_samples,
                 instance_demos=instance_demos, classify=classify_with, base_url=base_url,
                 seeds=seeds_path, decontaminate=evals, tokenizer=rouge_tokenizer, blacklist=blacklist_words(blacklist))
    ctx = click.get_current_context()
    passed = {key for key, param in PARAMS.items()
              if any(ctx.get_parameter_source(p) not in DEFAULTS for p in param.split("+"))}
    given, notes, refused = resume_options(out, previous_settings(out), given, passed)  # a resume keeps its options
    skipped = []
    seeds = load_seeds(given["seeds"], skip_invalid=skip_invalid, skipped=skipped, columns=columns)  # bad input files first
    if refused:
        raise refused
    cfg = GenerateConfig(**given, price_in=price_in, price_out=price_out)
    for err in skipped:
        click.echo(f"skipped: {err}", err=True)
    decontam = load_index(cfg.decontaminate, columns) if cfg.decontaminate else None  # before any model loads
    state = RunState(out, cfg.run_json(), seeds)
    if state.next_round > cfg.rounds:
        click.echo(f"{state.out}: all {cfg.rounds} round(s) already done; pass a larger --rounds to continue",
                   err=True)
        return
    if target_reached(cfg, state):
        click.echo(f"{state.out}: already holds {len(state.tasks)} tasks (--num-instructions {num_instructions}); "
                   "pass a larger one to continue", err=True)
        return
    if dry_run:
        for line in notes:  # once every check has passed
            click.echo(line, err=True)
        click.echo("\n".join(dry_run_lines(cfg, state, TOKEN_LIMITS, price_in=price_in, price_out=price_out,
                                            cap=max_cost, trust_remote_code=trust_remote_code)))
        return
    if max_cost is not None:
        cfg.budget = Budget(max_cost, price_in, price_out, state.stats)  # records the new cap
    else:
        state.stats.pop("budget", None)  # an earlier invocation's cap does not carry over
    for line in notes:
        click.echo(line, err=True)
    t = make_teacher(cfg.teacher, base_url=cfg.base_url, api_key=api_key, endpoint=cfg.endpoint,
                     concurrency=concurrency, timeout=request_timeout, max_retries=max_retries,
                     trust_remote_code=trust_remote_code, seed=cfg.seed, engine=engine, batch_size=batch_size,
                     repeat_penalty=cfg.repeat_penalty,
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
    if target_line(cfg, state):
        click.echo(target_line(cfg, state), err=True)


@click.command("answer")
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--model", required=True,
              help="The model that answers: a `train` output folder (the student as the next teacher), embedded, "
                   "smollm2, or any local model folder or hub id.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Write the answered rows here (JSONL; must not exist). A killed run resumes from OUT.partial.jsonl.")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the rejected rows (runaway or empty answers) here, with their reason.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most tokens per answer; an answer that hits it without ending is rejected as runaway.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0 = greedy decoding.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Nucleus sampling top-p (with --temperature above 0).")
@click.option("--repeat-penalty", type=click.FloatRange(0, min_open=True), default=1.2, show_default=True,
              help="Penalty on tokens among the answer's last 64, as llama.cpp's (1 = off): a small student "
                   "otherwise repeats one line until the token limit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Prompts generated together (left padding).")
@click.option("--template", type=click.Choice(["alpaca", "chat"]), default="alpaca", show_default=True,
              help="Prompt format; use the one the model was trained with.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling.")
@click.option("--skip-invalid", is_flag=True, help="Skip (and report) invalid rows instead of stopping.")
@columns_option
@click.option("--trust-remote-code", is_flag=True, help="Allow custom model code from the model folder.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def answer_cmd(data_path, model, out_path, rejected_path, max_new_tokens, temperature, top_p, repeat_penalty,
               batch_size, template, seed, skip_invalid, columns, trust_remote_code, no_progress):
    """Have a model write each row's output anew from its instruction and input (e.g. a model tuned on
    the seed tasks answering generated tasks); rows keep every other field. Run `filter` on the result."""
    from ..generation.answer import answer_file

    answer_file(data_path, model, out_path, rejected=rejected_path, max_new_tokens=max_new_tokens,
                batch_size=batch_size, temperature=temperature, top_p=top_p, repeat_penalty=repeat_penalty,
                template=template, seed=seed, skip_invalid=skip_invalid, columns=columns,
                trust_remote_code=trust_remote_code, progress=not no_progress,
                log=lambda m: click.echo(m, err=True))


@click.command("report")
@click.argument("run_dir", metavar="PATH", type=click.Path())
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for the report and its PNG plots [default: RUN_DIR/report for a generate folder, "
                   "else PATH.report beside it].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier report in that folder.")
@columns_option
def report_cmd(run_dir, out, overwrite, columns):
    """Report on a `generate` run (counts, rejections, cost, ...), a `select` scores file (each score's
    distribution, kept and dropped, with the cut marked), or any data file `train` reads (lengths,
    similarity, first words)."""
    from ..data.select import is_scores_file, write_scores_report
    from ..generation.report import write_report

    if is_scores_file(run_dir):
        click.echo(str(write_scores_report(run_dir, out, overwrite=overwrite)))
        return

    path = write_report(run_dir, out, overwrite=overwrite, columns=columns)
    click.echo(str(path))
