"""run.json keeps the settings of every invocation on a generate folder (issue 16.14)."""
import json

from selfinstruct.generation.journal import invocations_of


def test_run_json_keeps_each_invocations_settings(tmp_path):
    from test_generate import FakeTeacher, make_run

    make_run(tmp_path, FakeTeacher(), rounds=1, temperature=0.7)
    make_run(tmp_path, FakeTeacher(), rounds=2, temperature=0.9, max_tokens=300)   # resume with other settings
    make_run(tmp_path, FakeTeacher(), rounds=2, temperature=0.7)                     # nothing left to do
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    inv = run["invocations"]
    assert [(i["rounds"], i["temperature"], i["max_tokens"], i["from_round"]) for i in inv] == [
        (1, 0.7, 512, 1), (2, 0.9, 300, 2), (2, 0.7, 512, 3)]
    assert all(i["started"] and i["teacher_name"] == "fake" and "invocations" not in i for i in inv)
    assert run["temperature"] == 0.7 and run["rounds"] == 2          # the top level: the latest invocation
    assert len(run["resumed"]) == 2 and run["created"] == inv[0]["started"]


def test_an_older_run_json_starts_the_history_with_its_last_invocation():
    old = {"rounds": 3, "temperature": 0.5, "created": "2026-01-01T00:00:00Z", "resumed": ["2026-01-02T00:00:00Z"]}
    assert invocations_of(old) == [{"started": "2026-01-02T00:00:00Z", "rounds": 3, "temperature": 0.5}]
    assert invocations_of({}) == []
