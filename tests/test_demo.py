"""`make demo` can run twice: a new default folder per run, OUT=... picks one (issue 15.5)."""
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from selfinstruct import demo
ROOT = Path(__file__).resolve().parents[1]


def test_default_folder_is_new_per_run(monkeypatch):
    times = [dt.datetime(2026, 12, 1, 20, 0, 0, tzinfo=dt.timezone.utc),
             dt.datetime(2026, 12, 1, 20, 0, 1, tzinfo=dt.timezone.utc)]
    monkeypatch.setattr(demo, "_now", lambda: times.pop(0))
    first, second = demo.parse_args([]).out, demo.parse_args([]).out
    assert first == Path("outputs/demo-20261201-200000") and second == Path("outputs/demo-20261201-200001")
    assert demo.parse_args(["--out", "x/y"]).out == Path("x/y")


def test_a_used_folder_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "generate").mkdir()
    assert demo.main(["--out", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_demo_passes_out():
    def cmd(*extra):
        res = subprocess.run(["make", "-n", "-o", "install", "demo", *extra], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return [line for line in res.stdout.splitlines() if "selfinstruct.demo" in line]

    assert cmd("OUT=/tmp/my demo")[0].endswith('-m selfinstruct.demo --out "/tmp/my demo"')
    assert cmd()[0].rstrip().endswith("-m selfinstruct.demo")


def test_closing_lines_lead_with_the_headline(tmp_path):
    import json

    from selfinstruct.demo import closing_lines

    gen, ev = tmp_path / "gen", tmp_path / "ev"
    gen.mkdir()
    ev.mkdir()
    (gen / "stats.json").write_text(json.dumps({"total": {"kept": 40, "candidates": 90, "instances": 70}}))
    (ev / "metrics.json").write_text(json.dumps({"comparisons": [{"headline": "tuned beats embedded: ROUGE-L"}]}))
    assert closing_lines(gen, ev) == ["generated: 40 tasks kept of 90 candidates, 70 training rows",
                                      "tuned beats embedded: ROUGE-L"]
    (ev / "metrics.json").unlink()
    assert closing_lines(gen, ev)[1].startswith("(no headline")


def fake_commands(monkeypatch, filtered: str | None = None) -> list:
    """Replace the demo's commands: generate writes one row, filter (given ``filtered``) writes that text."""
    calls = []

    def fake_cli(*args):
        calls.append([str(a) for a in args])
        if args[0] == "generate":
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True)
            (out / "data.jsonl").write_text('{"instruction": "x", "input": "", "output": "y"}\n')
        if args[0] == "filter" and filtered is not None:
            Path(args[args.index("--out") + 1]).write_text(filtered)
        return 0.0, 0.0

    monkeypatch.setattr(demo, "cli", fake_cli)
    return calls


def test_the_demo_trains_on_generated_rows_and_the_seed_tasks(tmp_path, monkeypatch):
    """Step 2 adds the seed tasks (the paper's fine-tuning data has them) and drops eval leaks; step 3
    trains on what step 2 wrote; step 4 scores the packaged eval set."""
    calls = fake_commands(monkeypatch)
    assert demo.main(["--out", str(tmp_path / "d")]) == 0
    steps = {c[0]: c for c in calls}
    assert list(steps) == ["generate", "filter", "train", "eval", "report"]
    f = steps["filter"]
    assert f[f.index("--include-seeds") + 1] == "packaged" and f[f.index("--decontaminate") + 1] == "packaged"
    assert steps["train"][steps["train"].index("--data") + 1] == f[f.index("--out") + 1]
    assert steps["eval"][steps["eval"].index("--data") + 1] == "packaged"


def test_control_trains_the_seed_rows_alone_with_the_same_steps(tmp_path, monkeypatch):
    """--control (issue 24): a second model on step 2's seed rows only, same training settings, scored too."""
    import json

    rows = [{"instruction": "s1", "input": "", "output": "o", "seed": True},
            {"instruction": "g1", "input": "", "output": "o"},
            {"instruction": "s2", "input": "i", "output": "o", "seed": True}]
    calls = fake_commands(monkeypatch, filtered="".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(demo, "generated_value", lambda ev, name="": "value line")
    assert demo.main(["--out", str(tmp_path / "d"), "--control"]) == 0
    trains = [c for c in calls if c[0] == "train"]
    assert len(trains) == 2
    control, tuned = sorted(trains, key=lambda c: not c[c.index("--out") + 1].endswith("control"))
    data = Path(control[control.index("--data") + 1])
    assert [json.loads(line)["instruction"] for line in data.read_text().splitlines()] == ["s1", "s2"]
    strip = lambda c: [a for i, a in enumerate(c) if not (i and c[i - 1] in ("--data", "--out"))]  # noqa: E731
    assert strip(tuned) == strip(control)  # the same steps, batch, lr, length and split
    ev = next(c for c in calls if c[0] == "eval")
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--model"] == ["embedded", tuned[tuned.index("--out") + 1],
                                                                      control[control.index("--out") + 1]]


def test_generated_value_pairs_tuned_with_the_control(tmp_path):
    import json

    tuned, control = [0.5, 0.4, 0.3, 0.6], [0.2, 0.4, 0.1, 0.3]
    rows = [{"row": i, "model": m, "rouge_l": s} for m, xs in (("base", [0.0] * 4), ("t", tuned), ("c", control))
            for i, s in reversed(list(enumerate(xs)))]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = demo.generated_value(tmp_path)
    assert line.startswith("what the generated rows add: seeds + generated ")
    assert "0.450 vs 0.250, +0.200" in line and "3 wins / 1 ties / 0 losses" in line


def test_cycle_has_the_seeds_only_model_answer_the_generated_tasks_anew(tmp_path, monkeypatch):
    """--cycle (issue 24): the control (seeds only) trains first, answers the generated rows alone, those
    answers are filtered with the seed tasks, and the tuned model trains on that, with the same settings."""
    import json

    rows = [{"instruction": "s1", "input": "", "output": "o", "seed": True},
            {"instruction": "g1", "input": "", "output": "o"},
            {"instruction": "g2", "input": "i", "output": "o"}]
    calls = fake_commands(monkeypatch, filtered="".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(demo, "generated_value", lambda ev, name="": "value line")
    assert demo.main(["--out", str(tmp_path / "d"), "--cycle"]) == 0
    assert [c[0] for c in calls] == ["generate", "filter", "train", "answer", "filter", "train", "eval", "report"]
    control, answer, refilter, tuned = calls[2:6]
    assert answer[answer.index("--model") + 1] == control[control.index("--out") + 1]
    asked = Path(answer[1])
    assert [json.loads(line)["instruction"] for line in asked.read_text().splitlines()] == ["g1", "g2"]
    assert refilter[1] == answer[answer.index("--out") + 1]
    assert refilter[refilter.index("--include-seeds") + 1] == "packaged"
    assert tuned[tuned.index("--data") + 1] == refilter[refilter.index("--out") + 1]
    strip = lambda c: [a for i, a in enumerate(c) if not (i and c[i - 1] in ("--data", "--out"))]  # noqa: E731
    assert strip(tuned) == strip(control)
    ev = calls[6]
    assert [ev[i + 1] for i, a in enumerate(ev) if a == "--model"] == ["embedded", tuned[tuned.index("--out") + 1],
                                                                      control[control.index("--out") + 1]]
