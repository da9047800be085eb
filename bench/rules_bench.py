"""What the missing_input and repeated_output rules, and the reader rules, reject on human-written data.

Human-written rows should lose (almost) nothing: every row they reject there is a false alarm
unless it really lacks its input. Files (in ../shared/data, or --data DIR):
- instruction-data.json: 1,100 Alpaca-style rows (775 with an empty input);
- self_instruct_seed_tasks.jsonl and user_oriented_instructions.jsonl: the Self-Instruct paper's
  175 seed and 252 user-oriented tasks, one row per instance;
- t0_prompts.jsonl.gz: 55,185 T0 prompts, each with its input inside the instruction.

missing_input is counted per row. repeated_output is counted within blocks of 20 consecutive tasks
(an Alpaca-style request asks for 20) and with the whole file as one response (far stricter than
generate, which applies it within one round). Writes the
``## missing_input and repeated_output`` section of docs/benchmarks.md.
--run DIR adds the counts of a generate folder (its stats.json), with the command that made it.

The reader rules (selfinstruct/data/rules.py: scaffolding, write_a_program, not_a_task, no_code,
unrelated_output, output_echoes_instruction) are counted each on its own, on every human-written row and on
the rows of a generate folder (--gen DIR: its data.jsonl, the rows today's defaults kept, and the instructions
of its rejected.jsonl), with the caught generated rows shown unedited. Writes the ``## reader rules``
section (bench/reader_rules.py).
Usage: python bench/rules_bench.py [--data DIR] [--run DIR --run-command TEXT] [--gen DIR --gen-command TEXT]
       [--examples 10] [--reader-only] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfinstruct.data.filters import instance_reason, points_at_input, repeated_outputs  # noqa: E402
from selfinstruct.data.records import read_examples, read_tasks  # noqa: E402
from common import DOC, write_section  # noqa: E402
from reader_rules import reader_section  # noqa: E402

BLOCK = 20
FILES = ("instruction-data.json", "self_instruct_seed_tasks.jsonl", "user_oriented_instructions.jsonl",
         "t0_prompts.jsonl.gz")


def measure(path: Path) -> dict:
    if path.name.startswith(("self_instruct", "user_oriented")):
        tasks = read_tasks(path)
        rows = [{"instruction": t["instruction"], **i} for t in tasks for i in t["instances"]]
    else:
        rows = read_examples(path)
        tasks = [{"instruction": r["instruction"], "instances": [r]} for r in rows]
    missing = [r for r in rows if instance_reason(r["input"], r["output"], r["instruction"]) == "missing_input"]
    repeated = [t for t, why in zip(tasks, repeated_outputs(tasks)) if why]
    blocks = [why for i in range(0, len(tasks), BLOCK) for why in repeated_outputs(tasks[i:i + BLOCK])]
    return {"file": path.name, "rows": len(rows), "tasks": len(tasks),
            "empty_input": sum(1 for r in rows if not r["input"].strip()),
            "pointing_with_input": sum(1 for r in rows if r["input"].strip() and points_at_input(r["instruction"])),
            "missing_input": missing, "repeated_output": repeated, "repeated_in_blocks": sum(map(bool, blocks))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--examples", type=int, default=10)
    p.add_argument("--run", type=Path, default=None, help="a generate output folder to report on")
    p.add_argument("--run-command", default="", help="how that folder was made (shown as given)")
    p.add_argument("--gen", type=Path, action="append", default=[],
                   help="a generate output folder whose rows the reader rules judge (repeatable)")
    p.add_argument("--gen-command", action="append", default=[], help="how each --gen folder was made (shown as given)")
    p.add_argument("--reader-only", action="store_true", help="measure and write the reader rules' section only")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    paths = [args.data / name for name in FILES if (args.data / name).exists()]
    if not paths:
        sys.exit(f"no data in {args.data}")
    reader = reader_section(paths, list(zip(args.gen, args.gen_command + [""] * len(args.gen))), args.examples)
    if args.reader_only:
        print(reader)
        if not args.no_write:
            write_section(DOC, "reader rules", reader)
        return 0
    results = [measure(p) for p in paths]
    lines = [f"`python bench/rules_bench.py` on {time.strftime('%Y-%m-%d')}: counts, not timings. "
             "Human-written data, so each rejection is a false alarm unless the row really lacks its input.", "",
             f"| file | rows | empty input | missing_input | tasks | repeated_output, blocks of {BLOCK} "
             "| repeated_output, whole file | pointing rows that have an input |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['file']} | {r['rows']:,} | {r['empty_input']:,} | {len(r['missing_input']):,} | "
                     f"{r['tasks']:,} | {r['repeated_in_blocks']:,} | {len(r['repeated_output']):,} | "
                     f"{r['pointing_with_input']:,} |")
    lines += ["", "The last column shows the missing_input rule has teeth: rows whose instruction points at "
              "an input that they do have, which it would reject with the input taken away (T0 prompts carry "
              "their input inside the instruction, so none of them has one). T0 repeats outputs by design: it "
              "asks several questions about one passage and the same question under several templates, so "
              "its repeated_output counts are not false alarms of the kind generate meets.", ""]
    for r in results:
        if r["missing_input"]:
            lines.append(f"All {len(r['missing_input'])} missing_input rows of {r['file']} "
                         f"(first {args.examples} shown, instruction cut at 110 characters):")
            lines += [f"- `{x['instruction'][:110].replace(chr(10), ' ').replace('`', chr(39))}`"
                      for x in r["missing_input"][:args.examples]]
            lines.append("")
    if args.run:
        total = json.loads((args.run / "stats.json").read_text())["total"]
        rej, dropped = total["rejected"], total.get("instances_dropped", {})
        judged = total["kept"] + sum(rej.get(k, 0) for k in ("missing_input", "repeated_output", "no_instances"))
        lines += [f"A real generate run, `{args.run_command or args.run}`: {total['candidates']} candidates, "
                  f"{total['kept']} kept, {judged} past screening (the two rules judge only those); rejected as "
                  f"missing_input {rej.get('missing_input', 0)}, as repeated_output {rej.get('repeated_output', 0)}; "
                  f"instances dropped as missing_input {dropped.get('missing_input', 0)}. All rejections: "
                  + ", ".join(f"{k} {v}" for k, v in rej.items()) + ".", ""]
    body = "\n".join(lines) + "\n"
    print(body + "\n" + reader)
    if not args.no_write:
        write_section(DOC, "missing_input and repeated_output", body)
        write_section(DOC, "reader rules", reader)
    return 0


if __name__ == "__main__":
    sys.exit(main())
