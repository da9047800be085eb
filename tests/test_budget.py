"""Cost before money is spent: `generate --dry-run` and `--max-cost` (budget.py).

The cap is checked with the library loop and a fake teacher here; against a real
OpenAI-compatible server on 127.0.0.1 (llm-katan) in the tests marked `server`.
"""
from __future__ import annotations

import json
import math
import re
import urllib.request

import pytest
from click.testing import CliRunner

from selfinstruct import cli
from selfinstruct.generation.budget import Budget, BudgetReached, TokenCounter, plan_rounds, price
BASE_SAMPLES = 3
from selfinstruct.generation.bootstrap import CLASSIFY_TOKENS, INSTANCE_TOKENS, TOKEN_LIMITS, GenerateConfig, run
from selfinstruct.generation.journal import RunState
from selfinstruct.data.seeds import load_seeds
from selfinstruct.teachers import Usage
from fake_teacher import FakeTeacher
from servers import completion_body, free_port, start_katan, start_scripted

LIMITS = TOKEN_LIMITS
PRICE = 1000.0  # USD per 1M tokens: a token costs $0.001, so a small run crosses a small cap


def cfg_for(rounds=30, **kw):
    return GenerateConfig(**{"rounds": rounds, "teacher": "fake", "prompts_per_round": 2, "instances": 3,
                             "seed": 1, "price_in": PRICE, "price_out": PRICE, **kw})


def run_capped(out, cap, rounds=30):
    cfg = cfg_for(rounds)
    state = RunState(out, cfg.run_json(), load_seeds())
    teacher = FakeTeacher(1)
    cfg.budget = Budget(cap, PRICE, PRICE, state.stats, teacher.usage)
    try:
        run(teacher, cfg, state, echo=lambda m: None)
        reached = False
    except BudgetReached as e:
        reached = str(e)
    return reached, json.loads((out / "stats.json").read_text()), teacher


def spent_of(stats) -> float:
    rounds = stats["rounds"] + ([stats["in_progress"]] if "in_progress" in stats else [])
    return sum(price(r["prompt_tokens"], r["completion_tokens"], PRICE, PRICE) for r in rounds)


def test_the_cap_holds_and_a_higher_cap_resumes(tmp_path):
    from campaign import RunChecker

    out = tmp_path / "run"
    reached, stats, teacher = run_capped(out, cap=12.0)
    assert reached and reached.startswith("budget reached: $") and "--max-cost" in reached
    assert 0 < spent_of(stats) <= 12.0 and stats["budget"]["max_cost_usd"] == 12.0
    assert stats["budget"]["cost_usd"] == pytest.approx(spent_of(stats)) and stats["budget"]["reached"]
    checker = RunChecker(load_seeds(), 0.7)
    checker.check(out)  # kept as after a crash: nothing lost, the files agree
    done = len(stats["rounds"])
    assert done < 30
    # a higher cap resumes where it stopped; the recorded cost of the whole run stays under it
    reached2, stats2, _ = run_capped(out, cap=30.0)
    assert reached2 and len(stats2["rounds"]) > done and spent_of(stats2) <= 30.0
    assert stats2["budget"]["max_cost_usd"] == 30.0
    checker.check(out)
    # with room for everything, the run finishes and records its cost under the cap
    reached3, stats3, _ = run_capped(out, cap=10_000.0, rounds=len(stats2["rounds"]) + 1)
    assert not reached3 and "in_progress" not in stats3 and not stats3["budget"]["reached"]
    assert stats3["budget"]["cost_usd"] == pytest.approx(stats3["total"]["cost_usd"]) == pytest.approx(spent_of(stats3))
    checker.check(out, final=True)


def test_check_prices_the_worst_case_of_the_call():
    class T:
        usage = Usage()

    stats = {"rounds": [{"round": 1, "prompt_tokens": 1000, "completion_tokens": 0, "cost_usd": 1.0}]}
    # $1 recorded; one prompt of 10 UTF-8 bytes + 4 for its message, at most 20 completion tokens
    b = Budget(1.0 + 0.034, PRICE, PRICE, stats, T.usage)
    b.check(T, ["héllo wrl"], 20)  # 1.0 + (10 + 4 + 20) x $0.001 = exactly the cap: sent
    assert stats["budget"]["spent_bound_usd"] == pytest.approx(1.034)
    b = Budget(1.0 + 0.0339, PRICE, PRICE, stats, T.usage)
    with pytest.raises(BudgetReached):
        b.check(T, ["héllo wrl"], 20)
    assert stats["budget"]["reached"]
    # no usage from the server: the bound of what was sent counts as spent, an earlier run's bound too
    unknown = {"rounds": [{"round": 1, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None,
                           "unreported": 3}], "budget": {"spent_bound_usd": 0.5}}
    b = Budget(1.0, PRICE, PRICE, unknown, T.usage)
    assert b.base == 0.5 and unknown["budget"]["cost_usd"] is None
    T.usage.unreported += 1
    b.check(T, ["abcd"], 10)  # 0.5 + 0.018
    assert b.stats["budget"]["spent_bound_usd"] == pytest.approx(0.518)
    with pytest.raises(BudgetReached, match=r"\$0\.5180 spent"):
        b.check(T, ["a" * 470], 10)


def test_dry_run_counts_the_prompts_the_run_sends(tmp_path):
    from tiny import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "tiny", chat_template=False)
    cfg = cfg_for(rounds=2, teacher=f"hf:{model}", instance_samples=BASE_SAMPLES)
    count = TokenCounter(cfg.teacher)
    assert count.tokenizer is not None and not count.is_chat and "own tokenizer" in count.note
    rows = plan_rounds(cfg, load_seeds(), [], 1, count, LIMITS)
    # the run's own round 1 sends these instruction prompts: the low end counts exactly their tokens
    teacher = FakeTeacher(1)
    teacher.is_chat = False
    sent = []
    real = teacher.stream  # generate reads answers as they arrive
    teacher.stream = lambda prompts, **k: sent.extend(prompts) or real(prompts, **k)
    state = RunState(tmp_path / "run", cfg_for(rounds=1).run_json(), load_seeds())
    run(teacher, cfg_for(rounds=1), state, echo=lambda m: None)
    first = sent[:cfg.prompts_per_round]
    assert rows[0]["prompt_tokens"][0] == sum(count(p) for p in first)
    # a local teacher classifies by rule: no classify requests are planned (or sent)
    assert cfg.classify == "rules"
    # --instance-samples: each instance prompt is planned that many times
    assert rows[0]["requests"] == (2, 2 + 2 * 7 * BASE_SAMPLES)
    assert rows[0]["completion_tokens"][1] == 2 * 512 + 14 * BASE_SAMPLES * INSTANCE_TOKENS
    asked = plan_rounds(cfg_for(rounds=2, teacher=f"hf:{model}", classify="teacher", instance_samples=BASE_SAMPLES), load_seeds(), [], 1, count,
                        LIMITS)
    assert asked[0]["requests"] == (2, 2 + 2 * 7 * (1 + BASE_SAMPLES)) and asked[0]["completion_tokens"][1] == \
        2 * 512 + 14 * (CLASSIFY_TOKENS + BASE_SAMPLES * INSTANCE_TOKENS)
    approx = TokenCounter("openai:gpt-4o-mini")
    assert approx.tokenizer is None and "characters / 4" in approx.note
    assert approx([{"role": "user", "content": "x" * 40}]) == 10 + 4


def test_cli_dry_run_needs_no_server_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    res = CliRunner().invoke(cli.main, ["generate", "--teacher", "openai:gpt-4o-mini", "--base-url", url,
                                        "--dry-run", "--rounds", "3", "--prompts-per-round", "20",
                                        "--price-in", "0.15", "--price-out", "0.6", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not out.exists()
    assert "characters / 4" in res.output
    total = re.search(r"^\s+all\s+(\d+)-(\d+)\s+([\d,]+)-([\d,]+)\s+0-([\d,]+)\s+([\d.]+)-([\d.]+)\s+([\d.]+)$",
                      res.output, re.M)
    assert total, res.output
    assert total.group(1, 2) == ("60", "900") and total.group(5) == f"{3 * (20 * 512 + 140 * 259):,}"
    lo_in, hi_in, hi_out = (int(total.group(i).replace(",", "")) for i in (3, 4, 5))
    assert float(total.group(7)) == pytest.approx(price(hi_in, hi_out, 0.15, 0.6), abs=1e-4)
    assert float(total.group(6)) == pytest.approx(price(lo_in, 0, 0.15, 0.6), abs=1e-4)
    # the expected figure sits between the bounds, and a kept row has its price
    assert float(total.group(6)) < float(total.group(8)) < float(total.group(7))
    per_row = re.search(r"^expected: every planned request sent, answers at the paper's lengths.*per kept row "
                        r"\$([\d.]+) if every task asked for is kept .* \(([\d,]+) rows\)", res.output, re.M)
    assert per_row, res.output
    assert per_row.group(2) == f"{round(3 * 20 * 7 * 82_439 / 52_445):,}"
    assert float(per_row.group(1)) == pytest.approx(float(total.group(8)) / (3 * 20 * 7 * 82_439 / 52_445), rel=0.05)


def test_dry_run_names_the_alpaca_token_limit_it_plans_with(tmp_path):
    res = CliRunner().invoke(cli.main, ["generate", "--teacher", "openai:x", "--style", "alpaca", "--dry-run",
                                        "--rounds", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "--max-tokens 512 (alpaca-style requests: 1,024)" in res.output
    assert re.search(r"^\s+1\s+5\s+[\d,]+\s+0-5,120\s", res.output, re.M), res.output


def test_dry_run_on_a_resumed_run_expects_what_its_rounds_cost(tmp_path):
    from selfinstruct.generation.budget import dry_run_lines

    out = tmp_path / "run"
    cfg = cfg_for(rounds=2)
    run(FakeTeacher(1), cfg, RunState(out, cfg.run_json(), load_seeds()), echo=lambda m: None)
    stats = json.loads((out / "stats.json").read_text())
    rounds = stats["rounds"]
    mean_cost = sum(price(r["prompt_tokens"], r["completion_tokens"], PRICE, PRICE) for r in rounds) / 2
    more = cfg_for(rounds=5, teacher="openai:x")  # three more rounds, planned from this run's own two
    lines = dry_run_lines(more, RunState(out, cfg.run_json(), load_seeds()), LIMITS, price_in=PRICE, price_out=PRICE)
    text = "\n".join(lines)
    assert [float(line.split()[-1]) for line in lines if re.match(r"^\s+[345] ", line)] == \
        [pytest.approx(mean_cost, abs=1e-4)] * 3
    rows = stats["total"]["instances"] / 2 * 3
    assert f"expected: the mean of this run's 2 finished round(s); per kept row ${3 * mean_cost / rows:.5f}" in text


@pytest.mark.parametrize("args, message", [
    (["--max-cost", "0", "--price-in", "1", "--price-out", "1"], "error: --max-cost: must be a positive"),
    (["--max-cost", "-2", "--price-in", "1", "--price-out", "1"], "error: --max-cost: must be a positive"),
    (["--max-cost", "nan", "--price-in", "1", "--price-out", "1"], "error: --max-cost: must be a positive"),
    (["--max-cost", "5"], "error: --max-cost: needs --price-in and --price-out"),
    (["--price-out", "1"], "error: --price-in: goes with --price-out"),
])
def test_cli_bad_cost_options_are_one_line_before_any_request(tmp_path, monkeypatch, args, message):
    from selfinstruct import teachers
    monkeypatch.setattr(teachers, "make_teacher", lambda *a, **k: pytest.fail("teacher made"))
    res = CliRunner().invoke(cli.main, ["generate", "--teacher", "openai:x", "--out", str(tmp_path / "o")] + args)
    assert res.exit_code == 2 and res.output.startswith(message) and res.output.count("\n") == 1, res.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- real servers


def katan_tokens(url: str) -> tuple[int, int]:
    text = urllib.request.urlopen(url.removesuffix("/v1") + "/metrics").read().decode()
    grab = lambda name: int(re.search(rf"^llm_katan_{name}_tokens_total\{{.*\}} (\d+)", text, re.M).group(1))
    return grab("prompt"), grab("completion")


def generate_cli(url, out, *extra):
    args = ["generate", "--teacher", "openai:echo-model", "--base-url", url, "--rounds", "40",
            "--prompts-per-round", "2", "--price-in", str(PRICE), "--price-out", str(PRICE), "--out", str(out),
            *extra]
    return CliRunner().invoke(cli.main, args)


@pytest.mark.server
def test_cap_holds_against_a_real_server(tmp_path):
    out = tmp_path / "run"
    with start_katan("--max-concurrent", "8") as url:
        res = generate_cli(url, out, "--max-cost", "5")
        assert res.exit_code == 0, res.output
        last = res.output.strip().splitlines()[-1]
        assert last.startswith("budget reached: $") and "higher --max-cost" in last and str(out) in last
        assert re.search(r"round 1: .*tokens [\d,]+ in / [\d,]+ out, cost \$[\d.]+ \(run \$[\d.]+ of the "
                         r"\$5\.0000 cap\)", res.output)
        stats = json.loads((out / "stats.json").read_text())
        served_in, served_out = katan_tokens(url)
        # what the server counted is what we recorded, and it stays under the cap
        recorded = [*stats["rounds"], *([stats["in_progress"]] if "in_progress" in stats else [])]
        assert sum(r["prompt_tokens"] for r in recorded) == served_in
        assert sum(r["completion_tokens"] for r in recorded) == served_out
        assert price(served_in, served_out, PRICE, PRICE) <= 5.0
        assert stats["budget"]["max_cost_usd"] == 5.0 and stats["budget"]["reached"]
        assert stats["budget"]["cost_usd"] == pytest.approx(price(served_in, served_out, PRICE, PRICE))
        done = len(stats["rounds"])
        assert 1 <= done < 40
        res = generate_cli(url, out, "--max-cost", "9")  # a higher cap resumes
        assert res.exit_code == 0 and "resuming" in res.output and "budget reached" in res.output
        stats = json.loads((out / "stats.json").read_text())
        served_in, served_out = katan_tokens(url)
        assert len(stats["rounds"]) > done and price(served_in, served_out, PRICE, PRICE) <= 9.0
        assert stats["budget"]["max_cost_usd"] == 9.0


@pytest.mark.server
def test_missing_usage_shows_cost_as_unknown_and_the_cap_uses_bounds(tmp_path):
    body = completion_body("1. Sing.", chat=True)
    del body["usage"]
    with start_scripted([(200, {}, body)]) as (url, seen):
        res = CliRunner().invoke(cli.main, [
            "generate", "--teacher", "openai:m", "--base-url", url, "--rounds", "2", "--prompts-per-round", "2",
            "--price-in", "1", "--price-out", "2", "--out", str(tmp_path / "a")])
        assert res.exit_code == 0, res.output
        assert re.search(r"^\s+all\s.*\sunknown\s", res.output, re.M), res.output
        assert "$0.0000" not in res.output and "cost unknown" in res.output
        stats = json.loads((tmp_path / "a" / "stats.json").read_text())
        assert stats["total"]["unreported"] == stats["total"]["requests"] > 0
        assert stats["total"]["cost_usd"] is None
        assert all(r["cost_usd"] is None for r in stats["rounds"])
        rep = CliRunner().invoke(cli.main, ["report", str(tmp_path / "a")])
        assert rep.exit_code == 0, rep.output
        report = (tmp_path / "a" / "report" / "report.md").read_text()
        assert f"unknown ({stats['total']['unreported']} answers came without token usage)" in report
        # that cost is unknown for good: no cap can bound it (one line, before any request)
        n = len(seen.bodies)
        res = CliRunner().invoke(cli.main, [
            "generate", "--teacher", "openai:m", "--base-url", url, "--rounds", "3", "--prompts-per-round", "2",
            "--price-in", "1", "--price-out", "2", "--max-cost", "100", "--out", str(tmp_path / "a")])
        assert res.exit_code == 2 and res.output.startswith("error: --max-cost: this run's cost so far is unknown")
        assert len(seen.bodies) == n
        # with a cap from the start, what was sent counts at its worst case, so the cap still holds
        res = CliRunner().invoke(cli.main, [
            "generate", "--teacher", "openai:m", "--base-url", url, "--rounds", "50", "--prompts-per-round", "2",
            "--price-in", str(PRICE), "--price-out", str(PRICE), "--max-cost", "8", "--out", str(tmp_path / "b")])
        assert res.exit_code == 0 and "budget reached" in res.output, res.output
        stats = json.loads((tmp_path / "b" / "stats.json").read_text())
        sent = seen.bodies[n:]
        worst = sum(price(len(json.dumps(b["messages"])), b["max_tokens"], PRICE, PRICE) for b in sent)
        assert 0 < stats["budget"]["spent_bound_usd"] <= 8.0 and sent and worst > 0


@pytest.mark.parametrize("style", ["selfinstruct", "alpaca"])
def test_the_plan_builds_the_prompts_a_chat_run_sends(tmp_path, style):
    from selfinstruct.generation.budget import _round_prompts

    cfg = cfg_for(rounds=1, style=style)
    teacher = FakeTeacher(1)
    assert teacher.is_chat
    sent = []
    real = teacher.stream
    teacher.stream = lambda prompts, **k: sent.append(list(prompts)) or real(prompts, **k)
    run(teacher, cfg, RunState(tmp_path / "run", cfg.run_json(), load_seeds()), echo=lambda m: None)
    planned = [p for p, _, certain, _ in _round_prompts(cfg, load_seeds(), [], 1, True, LIMITS) if certain]
    assert planned == sent[0] and len(planned) == cfg.prompts_per_round


def test_failed_requests_do_not_shrink_the_prompt_bound():
    """Half of call 1 fails (no tokens reported for it); call 2's bound still covers its true tokens."""
    from selfinstruct.teachers import Completion

    class T:
        usage = Usage()

    b = Budget(1e9, PRICE, PRICE, {"rounds": []}, T.usage)
    first = [f"prompt number {i} " * 20 for i in range(6)]  # 1 token a character, as the server counts
    b.check(T, first, 10)
    answers = [(i, Completion("ok") if i % 2 else Completion("", finish_reason="error", error="500"))
               for i in range(len(first))]
    for i, c in b.track(first, iter(answers)):
        if c.error is None:
            T.usage.prompt_tokens += len(first[i])
    second = ["x" * 300, "y" * 200]
    assert b.prompt_bound(T, second) >= 500 + 4 * len(second)
