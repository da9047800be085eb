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


def test_the_demo_trains_on_generated_rows_and_the_seed_tasks(tmp_path, monkeypatch):
    """Step 2 adds the seed tasks (the paper's fine-tuning data has them) and drops eval leaks; step 3
    trains on what step 2 wrote; step 4 scores the packaged eval set."""
    calls = []

    def fake_cli(*args):
        calls.append([str(a) for a in args])
        if args[0] == "generate":
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True)
            (out / "data.jsonl").write_text('{"instruction": "x", "input": "", "output": "y"}\n')
        return 0.0, 0.0

    monkeypatch.setattr(demo, "cli", fake_cli)
    assert demo.main(["--out", str(tmp_path / "d")]) == 0
    steps = {c[0]: c for c in calls}
    assert list(steps) == ["generate", "filter", "train", "eval", "report"]
    f = steps["filter"]
    assert f[f.index("--include-seeds") + 1] == "packaged" and f[f.index("--decontaminate") + 1] == "packaged"
    assert steps["train"][steps["train"].index("--data") + 1] == f[f.index("--out") + 1]
    assert steps["eval"][steps["eval"].index("--data") + 1] == "packaged"
