"""The files of a `generate` run, and resuming one.

``tasks.jsonl`` is the journal of record: a task is kept once its line is
there. ``data.jsonl`` (one Alpaca row per instance) and ``data.messages.jsonl``
(the same rows as chat ``messages``) are derived from it and rebuilt on resume
when a crash left them behind. ``rejected.jsonl`` holds every
rejected candidate. ``stats.json`` (atomic) lists finished rounds; while a round
runs, its teacher usage so far sits under ``in_progress`` so a crash keeps the
token count. ``run.json`` keeps the options that must not change on resume, and
under ``invocations`` the settings of every command that ran on the folder.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections import Counter
from pathlib import Path

from ..data import writers
from .budget import recorded_cost
from ..data.formatting import to_messages
from ..data.writers import JsonlWriter, OutputError, atomic_write_json, read_jsonl_lenient, write_jsonl

FILES = ("tasks.jsonl", "data.jsonl", "data.messages.jsonl", "rejected.jsonl", "responses.jsonl", "stats.json",
         "run.json")
USAGE_KEYS = ("requests", "retries", "failures", "prompt_tokens", "completion_tokens", "unreported")
# options that define the data; resuming with other values would mix two runs in one folder
FIXED = {"teacher": "--teacher", "style": "--style", "threshold": "--threshold", "instances": "--instances",
         "seed": "--seed", "endpoint": "--endpoint", "seeds_sha256": "--seeds (other seed tasks)",
         "tokenizer": "--tokenizer", "blacklist": "--blacklist", "classify": "--classify"}


def seeds_digest(seeds: list[dict]) -> str:
    """A hash of the seed instructions (what the run depends on), to spot a changed seed file."""
    h = hashlib.sha256()
    for t in seeds:
        h.update(t["instruction"].encode("utf-8") + b"\0")
    return h.hexdigest()


def data_rows(task: dict) -> list[dict]:
    """Alpaca training rows for one kept task."""
    return [{"instruction": task["instruction"], "input": i["input"], "output": i["output"]}
            for i in task["instances"]]


def message_rows(task: dict) -> list[dict]:
    """The same rows as chat ``{messages: [user, assistant]}`` (what ``export --format messages`` writes)."""
    return [{"messages": to_messages(row)} for row in data_rows(task)]


def check_out_dir(out) -> Path:
    """Refuse an output folder we cannot use; say nothing yet about resuming."""
    return writers.check_out_dir(out, ours=FILES, marker="run.json", what="generate run")


def run_settings(run: dict) -> dict:
    """The settings of one invocation, as run.json's top level holds them (the latest one's)."""
    return {k: v for k, v in run.items() if k not in ("created", "resumed", "invocations")}


def invocations_of(run: dict) -> list[dict]:
    """The history of invocations in an earlier run.json; one written before the history was kept
    gives its last invocation only (the settings it holds)."""
    if isinstance(run.get("invocations"), list):
        return run["invocations"]
    if not run:
        return []
    started = (run.get("resumed") or [run.get("created")])[-1]
    return [{"started": started, **run_settings(run)}]


def empty_round(n: int) -> dict:
    return {"round": n, **{k: 0 for k in USAGE_KEYS}, "cost_usd": None, "candidates": 0, "kept": 0,
            "instances": 0, "rejected": {}, "instances_dropped": {}, "seconds": 0.0}


def total_of(rounds: list[dict]) -> dict:
    total = {k: v for k, v in empty_round(0).items() if k != "round"}
    for r in rounds:
        for k in ("candidates", "kept", "instances", "seconds", *USAGE_KEYS):
            total[k] += r[k]
        if r["cost_usd"] is not None:
            total["cost_usd"] = (total["cost_usd"] or 0.0) + r["cost_usd"]
        for key in ("rejected", "instances_dropped"):
            for reason, n in r.get(key, {}).items():
                total[key][reason] = total[key].get(reason, 0) + n
    total["seconds"] = round(total["seconds"], 2)
    return total


class RunState:
    """Owns the output folder: reads it back on resume, appends rows, writes stats."""

    def __init__(self, out, config: dict, seeds: list[dict]):
        self.out = check_out_dir(out)
        self.config = {**config, "seeds_sha256": seeds_digest(seeds)}
        self.seeds = seeds
        self.paths = {name.split(".")[-2]: self.out / name for name in FILES}  # data.messages.jsonl: messages
        self.tasks: list[dict] = read_jsonl_lenient(self.paths["tasks"])
        self.rejected: list[dict] = read_jsonl_lenient(self.paths["rejected"])
        self.responses = len(read_jsonl_lenient(self.paths["responses"]))  # ids go on from here
        self.stats = self._read_stats()
        self.resumed = bool(self.tasks or self.rejected or self.stats["rounds"])
        for row in self.stats["rounds"]:
            self._recount(row)  # the files are the record; stats follow them
        self._check_compatible()
        self.instructions = {t["instruction"] for t in self.tasks}
        self._writers: dict[str, JsonlWriter] = {}

    # ------------------------------------------------------------------ reading back

    def _read_stats(self) -> dict:
        path = self.paths["stats"]
        try:
            stats = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, ValueError):
            stats = {}
        if not isinstance(stats, dict):
            stats = {}
        rounds = []
        for i, row in enumerate(stats.get("rounds") or [], 1):
            if not isinstance(row, dict) or row.get("round") != i:
                break
            rounds.append({**empty_round(i), **row})
        stats["rounds"] = rounds
        return stats

    def _check_compatible(self) -> None:
        path = self.paths["run"]
        if not path.exists():
            if self.resumed:
                raise OutputError(f"{self.out}: has generated files but no run.json; choose another --out")
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise OutputError(f"{path}: unreadable (not JSON); choose another --out") from None
        if not self.resumed:
            return  # nothing was generated yet: the new options simply replace the old ones
        for key, flag in FIXED.items():
            if key in old and old[key] != json.loads(json.dumps(self.config.get(key))):  # tuples as lists
                shown = "" if key == "seeds_sha256" else f" {old[key]} (this run: {self.config.get(key)})"
                raise OutputError(f"{self.out}: cannot resume, it was generated with {flag}{shown}; "
                                  "use the same options or another --out")

    @property
    def next_round(self) -> int:
        return len(self.stats["rounds"]) + 1

    @property
    def pool(self) -> list[dict]:
        """Kept machine tasks, in the order they were written."""
        return self.tasks

    def carried_usage(self, round_no: int) -> dict:
        """Teacher usage of an interrupted earlier attempt at ``round_no`` (zeros if none)."""
        prog = self.stats.get("in_progress") or {}
        if prog.get("round") != round_no:
            return {k: 0 for k in (*USAGE_KEYS, "seconds")}
        return {**{k: int(prog.get(k, 0)) for k in USAGE_KEYS}, "seconds": float(prog.get("seconds", 0))}

    # ------------------------------------------------------------------ writing

    def start(self, teacher_name: str) -> None:
        """Write run.json, open the journals, and bring data.jsonl in line with tasks.jsonl."""
        self.out.mkdir(parents=True, exist_ok=True)
        now = _now()
        run = {**self.config, "teacher_name": teacher_name}
        old = json.loads(self.paths["run"].read_text(encoding="utf-8")) if self.paths["run"].exists() else {}
        run["created"] = old.get("created", now)
        run["resumed"] = old.get("resumed", []) + ([now] if self.resumed else [])
        this = {"started": now, "from_round": self.next_round, **run_settings(run)}
        run["invocations"] = invocations_of(old) + [this]
        atomic_write_json(self.paths["run"], run)
        self._reconcile_data()
        for name in ("tasks", "data", "messages", "rejected", "responses"):
            self._writers[name] = JsonlWriter(self.paths[name])
        self.stats["teacher"] = teacher_name
        self.stats["seeds"] = len(self.seeds)

    def _reconcile_data(self) -> None:
        for name, derive in (("data", data_rows), ("messages", message_rows)):
            rows = [row for t in self.tasks for row in derive(t)]
            path = self.paths[name]
            if path.exists() and read_jsonl_lenient(path) == rows:
                continue
            if rows or path.exists():
                write_jsonl(path, rows)  # tasks.jsonl is the record; data.jsonl and data.messages.jsonl follow it

    def new_id(self) -> str:
        return f"machine_task_{len(self.tasks)}"

    def add_task(self, task: dict) -> bool:
        """Append a kept task and its data rows; False (nothing written) if its instruction is already kept."""
        if task["instruction"] in self.instructions:
            return False
        task = {"id": self.new_id(), **task}
        self._writers["tasks"].write(task)
        self._writers["data"].write_many(data_rows(task))
        self._writers["messages"].write_many(message_rows(task))
        self.tasks.append(task)
        self.instructions.add(task["instruction"])
        return True

    def add_response(self, round_no: int, stage: str, text: str, finish_reason: str) -> str:
        """Journal one raw teacher answer (to audit how a row was made); returns its id."""
        rid = f"response_{self.responses}"
        self._writers["responses"].write({"id": rid, "round": round_no, "stage": stage, "text": text,
                                          "finish_reason": finish_reason})
        self.responses += 1
        return rid

    def add_rejected(self, row: dict) -> None:
        row = {k: v for k, v in row.items() if v is not None}
        self._writers["rejected"].write(row)
        self.rejected.append(row)

    def sync(self) -> None:
        for w in self._writers.values():
            w.sync()

    def checkpoint(self, round_no: int, usage: dict, seconds: float, *, sync: bool = True) -> None:
        """Record the usage of the running round so far (survives a crash). ``sync=False`` skips
        fsyncing the journals (their lines are flushed already, which a killed process cannot undo)."""
        if sync:
            self.sync()
        self.stats["in_progress"] = {"round": round_no, **usage, "seconds": round(seconds, 2)}
        self._write_stats()

    def finish_round(self, round_no: int, usage: dict, seconds: float, cost: float | None,
                     instances_dropped: Counter) -> dict:
        """Close a round: its counts come from the rows written for it (files and stats agree)."""
        self.sync()
        row = empty_round(round_no)
        row.update({k: int(usage.get(k, 0)) for k in USAGE_KEYS})
        row["cost_usd"] = cost
        self._recount(row)
        row["instances_dropped"] = dict(sorted(instances_dropped.items()))
        row["seconds"] = round(seconds, 2)
        self.stats["rounds"].append(row)
        self.stats.pop("in_progress", None)
        self._write_stats()
        return row

    def _recount(self, row: dict) -> None:
        """Set a round's kept/instances/rejected/candidates from the rows in the files."""
        n = row["round"]
        tasks = [t for t in self.tasks if t.get("round") == n]
        rejected = Counter(str(r.get("reason")) for r in self.rejected if r.get("round") == n)
        row["kept"] = len(tasks)
        row["instances"] = sum(len(t.get("instances", [])) for t in tasks)
        row["rejected"] = dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
        row["candidates"] = row["kept"] + sum(rejected.values())

    def _write_stats(self) -> None:
        stats = {"teacher": self.stats.get("teacher"), "seeds": self.stats.get("seeds"),
                 "rounds": self.stats["rounds"], "total": total_of(self.stats["rounds"])}
        if "in_progress" in self.stats:
            stats["in_progress"] = self.stats["in_progress"]
        if stats["total"]["unreported"]:  # some answers came without token usage: the cost is unknown
            stats["total"]["cost_usd"] = None
        if self.stats.get("budget"):  # --max-cost: the cap and the cost recorded so far
            b = self.stats["budget"]
            cost = recorded_cost(stats, b["price_in"], b["price_out"])
            b["cost_usd"] = None if cost is None else round(cost, 6)
            stats["budget"] = b
        self.stats["total"] = stats["total"]
        atomic_write_json(self.paths["stats"], stats)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
