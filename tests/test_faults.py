"""Teacher faults: `generate --teacher openai:...` against real llm-katan servers on 127.0.0.1.

The echo backend answers with the prompt, so candidates are copies of seeds and
get rejected; these tests check that the run finishes (or stops with a message
that says how to resume), that retries and failures land in stats.json exactly,
that every request that failed for good is recorded in rejected.jsonl, and that
a server killed mid-run loses nothing.
"""
import json
import re
import signal
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner

from campaign import SCALE, record
from selfinstruct.cli import main
from servers import free_port, katan_command, stop_process, wait_ready

pytestmark = pytest.mark.server


class Katan:
    """An llm-katan echo server we can SIGKILL and start again on the same port."""

    def __init__(self, tmp_path, *args):
        self.port, self.args, self.tmp = free_port(), args, tmp_path
        self.proc = None
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        cmd = katan_command(*self.args, port=self.port, stats_file=str(self.tmp / "katan-stats.json"))
        self.log = open(self.tmp / "katan.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_ready(f"http://127.0.0.1:{self.port}/health", self.proc, 60)
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
            self.log.close()


@pytest.fixture
def katan(tmp_path):
    servers = []

    def make(*args):
        k = Katan(tmp_path, *args).start()
        servers.append(k)
        return k

    yield make
    for k in servers:
        k.stop()


def generate(url, out, *, rounds=2, prompts=4, retries=2, timeout=10.0, concurrency=4):
    return CliRunner().invoke(main, [
        "generate", "--teacher", "openai:echo-model", "--base-url", url, "--out", str(out),
        "--rounds", str(rounds), "--prompts-per-round", str(prompts), "--concurrency", str(concurrency),
        "--max-retries", str(retries), "--request-timeout", str(timeout), "--seed", "1"])


def total(out) -> dict:
    return json.loads((out / "stats.json").read_text())["total"]


def rejected(out) -> list[dict]:
    """Rejected rows that record a request that failed for good (they carry its 'error')."""
    rows = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("error")]


def check_files(out):
    """Every line parses; ids and instructions unique; stats agree with the files."""
    tasks = [json.loads(x) for x in (out / "tasks.jsonl").read_text().splitlines()]
    data = (out / "data.jsonl").read_text().splitlines()
    assert len({t["id"] for t in tasks}) == len(tasks) == len({t["instruction"] for t in tasks})
    t = total(out)
    assert t["kept"] == len(tasks) and t["instances"] == len(data)
    assert t["candidates"] == len(tasks) + sum(1 for _ in (out / "rejected.jsonl").read_text().splitlines())
    return tasks


def test_server_errors_30_percent(katan, tmp_path):
    k = katan("--error-rate", "0.3", "--max-concurrent", "8")
    out = tmp_path / "run"
    res = generate(k.url, out, rounds=3, prompts=10 * SCALE, retries=6)
    assert res.exit_code == 0, res.output
    t = total(out)
    assert t["requests"] >= 30 * SCALE and t["retries"] >= 1
    assert len(rejected(out)) == t["failures"]
    check_files(out)
    record("fault", kind="HTTP 500 (30%)", injected=t["retries"] + t["failures"], requests=t["requests"],
           retries=t["retries"], failures=t["failures"])


@pytest.mark.parametrize("flag,status", [("--rate-limit-after", "429"), ("--timeout-after", "504")])
def test_permanent_refusal_after_n_requests(katan, tmp_path, flag, status):
    """After N answers every request fails for good: each is retried, counted, recorded; the run goes on."""
    n, retries = 3, 1
    k = katan(flag, str(n))
    out = tmp_path / "run"
    res = generate(k.url, out, rounds=2, prompts=4, retries=retries)
    assert res.exit_code == 0, res.output
    t = total(out)
    assert t["requests"] == 8 and t["failures"] == t["requests"] - n and t["retries"] == retries * t["failures"]
    rows = rejected(out)
    assert len(rows) == t["failures"]
    assert all(status in r["error"] for r in rows), rows
    check_files(out)
    record("fault", kind=f"HTTP {status} after {n} requests", injected=t["retries"] + t["failures"],
           requests=t["requests"], retries=t["retries"], failures=t["failures"])


def test_latency_beyond_the_client_timeout(katan, tmp_path):
    k = katan("--latency-ms", "3000", "--max-concurrent", "8")
    out = tmp_path / "run"
    res = generate(k.url, out, rounds=1, prompts=2, retries=1, timeout=0.5)
    assert res.exit_code == 0, res.output
    t = total(out)
    assert (t["requests"], t["failures"], t["retries"]) == (2, 2, 2)
    rows = rejected(out)
    assert len(rows) == 2 and all("Timeout" in r["error"] for r in rows)
    record("fault", kind="latency beyond the client timeout", injected=t["retries"] + t["failures"],
           requests=t["requests"], retries=t["retries"], failures=t["failures"])


def _kill_after_first_round(server, out, restart_after=None):
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.loads((out / "stats.json").read_text())["rounds"]:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        server.kill()
        if restart_after is not None:
            time.sleep(restart_after)
            server.start()

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    return th


def test_server_killed_mid_run_stops_cleanly_then_resumes(katan, tmp_path):
    k = katan("--latency-ms", "300", "--max-concurrent", "8")
    out = tmp_path / "run"
    th = _kill_after_first_round(k, out)
    res = generate(k.url, out, rounds=4, prompts=3, retries=1)
    th.join()
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    msg = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(msg) == 1 and str(out) in msg[0] and "again" in msg[0], res.stderr
    first = (out / "tasks.jsonl").read_text()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in_progress"]["failures"] >= 1  # the failed requests of the cut round are kept
    k.start()
    res = generate(k.url, out, rounds=4, prompts=3, retries=1)
    assert res.exit_code == 0, res.output
    assert (out / "tasks.jsonl").read_text().startswith(first)
    t = total(out)
    assert len(json.loads((out / "stats.json").read_text())["rounds"]) == 4
    assert t["failures"] >= stats["in_progress"]["failures"]
    assert t["requests"] >= 12 + stats["in_progress"]["requests"]  # the cut attempt at round 2 is counted too
    check_files(out)
    record("fault", kind="server killed, run stopped, resumed", injected=1, requests=t["requests"],
           retries=t["retries"], failures=t["failures"])


def test_server_restarted_during_retries_run_finishes(katan, tmp_path):
    k = katan("--latency-ms", "300", "--max-concurrent", "8")
    out = tmp_path / "run"
    th = _kill_after_first_round(k, out, restart_after=0.5)
    res = generate(k.url, out, rounds=3, prompts=3, retries=8)
    th.join()
    assert res.exit_code == 0, res.output
    t = total(out)
    assert t["retries"] >= 1 and t["failures"] == 0 and t["requests"] == 9
    assert len(json.loads((out / "stats.json").read_text())["rounds"]) == 3
    check_files(out)
    record("fault", kind="server killed and restarted during retries", injected=1, requests=t["requests"],
           retries=t["retries"], failures=t["failures"])


def test_permanent_failures_are_summarised_on_screen(katan, tmp_path):
    k = katan("--rate-limit-after", "1")
    out = tmp_path / "run"
    res = generate(k.url, out, rounds=1, prompts=3, retries=1)
    assert res.exit_code == 0
    assert re.search(r"teacher: 2 request\(s\) failed for good .*, 2 retried", res.output), res.output


def _chat_script():
    """Answers by prompt kind: instruction prompts get, in turn, no choices, empty content, JSON of the wrong
    shape and a good JSON list; instance prompts likewise (classify says No)."""
    from servers import completion_body
    calls = {"instructions": 0, "instances": 0}
    good = {"instructions": '{"tasks": ["Explain how tides form to a curious child.", '
                            '"Suggest three names for a bakery run by twins.", "Convert 3 miles to kilometres."]}',
            "instances": '{"examples": [{"input": "", "output": "Tides come from the pull of the Moon."}]}'}

    def script(body):
        text = json.dumps(body.get("messages"))
        if "classification task? Answer" in text:
            return 200, {}, completion_body("No", chat=True)
        kind = "instances" if "Reply in JSON" in text else "instructions"
        calls[kind] += 1
        n = calls[kind] % 4
        if n == 1:
            return 200, {}, {**completion_body("", chat=True), "choices": []}
        if n == 2:
            return 200, {}, completion_body("", chat=True)
        if n == 3:
            return 200, {}, completion_body('{"response": "Sure! 1. Write a poem."}', chat=True)
        return 200, {}, completion_body(good[kind], chat=True)

    return script


def test_chat_replies_that_are_empty_missing_or_the_wrong_shape(tmp_path):
    """No choices, empty content, JSON of the wrong shape: each is one rejected row with its reason, never a crash,
    in the instruction stage and the instance stage of the chat prompts (JSON asked for via response_format)."""
    from servers import start_scripted

    out = tmp_path / "run"
    with start_scripted(_chat_script()) as (url, seen):
        res = CliRunner().invoke(main, [
            "generate", "--teacher", "openai:chat-model", "--base-url", url, "--out", str(out), "--rounds", "1",
            "--prompts-per-round", "4", "--concurrency", "1", "--max-retries", "0", "--seed", "1",
            "--no-decontaminate"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    rows = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    propose = [r for r in rows if r["reason"] in ("teacher_error", "empty_response", "unexpected_json")]
    assert sorted(r["reason"] for r in propose) == ["empty_response", "teacher_error", "unexpected_json"]
    assert "no choices" in next(r["error"] for r in propose if r["reason"] == "teacher_error")
    # the 3 good tasks: their instance requests got no choices, empty content, wrong-shape JSON in turn
    assert sorted(r["reason"] for r in rows if r["reason"] == "no_instances") == ["no_instances"] * 3
    dropped = json.loads((out / "stats.json").read_text())["rounds"][0]["instances_dropped"]
    assert dropped == {"empty_response": 1, "teacher_error": 1, "unexpected_json": 1}
    assert total(out)["kept"] == 0 and total(out)["failures"] == 2
    asked = [b.get("response_format", {}).get("type") for b in seen.bodies if "max_tokens" in b]
    assert "json_schema" in asked  # the chat prompts asked for JSON
    check_files(out)
