"""The SIGKILL campaign on `generate`, shared by tests/test_crash_campaign.py and bench/reliability_campaign.py.

``generate_kill_campaign(out, seed, kills)`` runs ``tests/fake_teacher.py`` in a
subprocess, kills it with SIGKILL at random points (a seeded RNG picks a delay,
or a number of new kept tasks to wait for), checks the folder after every kill
(:class:`RunChecker`), resumes, and finally lets the run finish all its rounds.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE = Path(__file__).resolve().parent / "fake_teacher.py"
# bench/reliability_campaign.py runs the hardening tests with RELIABILITY_SCALE > 1 and collects what
# they record(): kills landed, faults injected, hostile cases tried, rows lost
SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))


def record(section: str, **figures) -> None:
    """Append one measured figure row to $RELIABILITY_FIGURES (a JSONL file), when set."""
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"section": section, **figures}) + "\n")


def read_lines(path: Path) -> tuple[list[dict], bool]:
    """Every complete line of a JSONL file parsed (a bad complete line fails); (rows, last line torn?)."""
    if not path.exists():
        return [], False
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop() != b""
    rows = []
    for n, line in enumerate(lines, 1):
        assert line.strip(), f"{path}:{n}: blank line"
        rows.append(json.loads(line.decode("utf-8")))
    return rows, torn


class RunChecker:
    """Checks a `generate` folder after a kill; remembers what was kept to catch losses."""

    def __init__(self, seeds: list[dict], threshold: float):
        from rouge_score import rouge_scorer, tokenize

        self.threshold = threshold
        self._tok = lambda s: tokenize.tokenize(s, None)
        self._lcs = rouge_scorer._score_lcs
        self.pool = [self._tok(t["instruction"]) for t in seeds]  # seeds + kept tasks checked so far
        self.kept: list[dict] = []   # tasks.jsonl rows seen so far (must stay a prefix)
        self.lost = 0
        self.torn = Counter()

    def check(self, out: Path, *, final: bool = False) -> dict:
        from selfinstruct.data.filters import instruction_reason
        from selfinstruct.generation.journal import data_rows, message_rows
        from selfinstruct.data.similarity import rouge_l, tokenize

        tasks, torn_t = read_lines(out / "tasks.jsonl")
        data, torn_d = read_lines(out / "data.jsonl")
        msgs, torn_m = read_lines(out / "data.messages.jsonl")
        rejected, torn_r = read_lines(out / "rejected.jsonl")
        for name, t in (("tasks", torn_t), ("data", torn_d), ("messages", torn_m), ("rejected", torn_r)):
            self.torn[name] += t
        # nothing already kept is lost: the rows seen before are still the file's first rows
        same = sum(1 for a, b in zip(self.kept, tasks) if a == b)
        if same < len(self.kept):
            self.lost += len(self.kept) - same
        assert tasks[:len(self.kept)] == self.kept, f"{out}: kept rows changed or were lost"
        ids = [t["id"] for t in tasks]
        insts = [" ".join(t["instruction"].split()).lower() for t in tasks]
        assert len(set(ids)) == len(ids), "duplicate task id"
        assert len(set(insts)) == len(insts), "duplicate instruction"
        # every new kept row passes the filters against the seeds and everything kept before it
        for t in tasks[len(self.kept):]:
            assert instruction_reason(t["instruction"]) is None, t["instruction"]
            assert t["instances"], t
            toks = self._tok(t["instruction"])
            score, nearest = max((self._lcs(other, toks).fmeasure, other) for other in self.pool)
            assert score <= self.threshold, (t["instruction"], " ".join(nearest), score)
            # our ROUGE-L equals rouge-score's, and the row's own similarity is at least this max
            assert rouge_l(tokenize(" ".join(nearest)), tokenize(t["instruction"])) == score
            assert t["similarity"] >= round(score, 4) - 1e-4, (t, score)
            self.pool.append(toks)
        self.kept = tasks
        # data.jsonl follows tasks.jsonl (it may lag by the rows of the last task before a resume)
        expected = [r for t in tasks for r in data_rows(t)]
        assert data == expected[:len(data)], "data.jsonl is not the flattened tasks.jsonl"
        expected_m = [r for t in tasks for r in message_rows(t)]
        assert msgs == expected_m[:len(msgs)], "data.messages.jsonl is not the flattened tasks.jsonl"
        # stats.json (atomic) agrees with the files for every finished round
        stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else {"rounds": []}
        done = {r["round"]: r for r in stats["rounds"]}
        per_round = Counter(t["round"] for t in tasks)
        inst_round = Counter()
        for t in tasks:
            inst_round[t["round"]] += len(t["instances"])
        for n, row in done.items():
            assert row["kept"] == per_round[n], (n, row["kept"], per_round[n])
            assert row["instances"] == inst_round[n]
            n_rej = sum(1 for r in rejected if r.get("round") == n)
            assert sum(row["rejected"].values()) == n_rej and row["candidates"] == row["kept"] + n_rej
        assert all(r <= len(done) + 1 for r in per_round), "tasks of a round after the running one"
        if final:
            assert not (torn_t or torn_d or torn_m or torn_r)
            assert data == expected and msgs == expected_m
            assert stats["total"]["kept"] == len(tasks) and stats["total"]["instances"] == len(data)
            assert "in_progress" not in stats
        return {"tasks": len(tasks), "data": len(data), "rejected": len(rejected), "rounds": len(done)}


def ledger_path(out: Path) -> Path:
    """The fake server's own token count: one ``prompt completion`` line per answer it sent."""
    return out.parent / (out.name + ".ledger")


def check_spend(out: Path, earlier_gap: int = 0) -> int:
    """The tokens recorded in stats.json never fall below what the server billed, but for the one
    answer that may have been between the server and our checkpoint at each kill: a kill widens the
    gap by at most its last answer. Returns the gap (billed minus recorded tokens)."""
    ledger = ledger_path(out)
    text = ledger.read_text() if ledger.exists() else ""  # killed before its first answer
    billed = [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]
    stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else {"rounds": []}
    rows = stats["rounds"] + ([stats["in_progress"]] if stats.get("in_progress") else [])
    recorded = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    server = sum(a + b for a, b in billed)
    in_flight = sum(billed[-1]) if billed else 0
    assert server - recorded <= earlier_gap + in_flight, \
        f"spend lost: recorded {recorded}, billed {server}, earlier gap {earlier_gap}, last answer {in_flight}"
    return server - recorded


def spawn(out: Path, seed: int, rounds: int, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, str(FAKE), str(out), str(seed), str(rounds), str(delay),
                             str(ledger_path(out))],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def generate_kill_campaign(out: Path, seed: int, kills: int, rounds: int = 12, delay: float = 0.004,
                           log=lambda m: None) -> dict:
    """SIGKILL `generate` ``kills`` times at seeded random points, checking after each; then finish."""
    from selfinstruct.data.seeds import load_seeds

    rng = random.Random(seed)
    checker = RunChecker(load_seeds(), threshold=0.7)
    landed = attempts = 0
    modes, gaps = Counter(), []
    while landed < kills:
        attempts += 1
        assert attempts < kills * 4, "the kills keep missing the run"
        before = _count_lines(out / "tasks.jsonl")
        proc = spawn(out, seed, rounds, delay)
        if rng.random() < 0.5:  # a random moment (startup and resume included)
            mode, deadline = "time", time.monotonic() + rng.uniform(0.05, 2.0)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
        else:  # just after the k-th new kept task, plus a few ms (mid-round, around a write)
            mode, want = "progress", before + rng.randint(1, 10)
            while proc.poll() is None and _count_lines(out / "tasks.jsonl") < want:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
            modes[mode] += 1
        else:
            err = proc.stderr.read().decode(errors="replace")
            assert proc.returncode == 0, err[-3000:]
            rounds += 2  # it finished before the kill: ask for more rounds (resume continues)
        proc.stderr.close()
        info = checker.check(out)
        gaps.append(check_spend(out, gaps[-1] if gaps else 0))
        log(f"kill {landed} ({mode}): {info}, spend gap {gaps[-1]} tokens")
    proc = spawn(out, seed, rounds, delay)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    info = checker.check(out, final=True)
    gap = gaps[-1] if gaps else 0
    assert check_spend(out, gap) == gap  # the last, unkilled run recorded every token it was billed
    assert info["rounds"] == rounds
    return {"kills": landed, "modes": dict(modes), "rounds": rounds, "rows_lost": checker.lost,
            "spend_gap_tokens": gaps[-1] if gaps else 0,
            "kills_that_lost_an_answer": sum(b > a for a, b in zip([0] + gaps, gaps)),
            "torn_lines_seen": dict(checker.torn), **info}
