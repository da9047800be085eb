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
