"""bench/chat_profile.py: per-stage server time of a generate run against a serial server."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import chat_profile  # noqa: E402
from servers import completion_body, start_scripted  # noqa: E402
from selfinstruct.teachers import openai_api  # noqa: E402


def test_service_time_starts_at_the_later_of_send_and_previous_answer():
    reqs = [{"sent": 0.0, "answered": 2.0}, {"sent": 0.0, "answered": 5.0}, {"sent": 9.0, "answered": 10.0}]
    assert chat_profile.service_times(reqs[::-1]) == [2.0, 3.0, 1.0]


def test_stage_table_sums_per_stage():
    reqs = [{"stage": "instructions", "sent": 0, "answered": 4, "prompt_tokens": 10, "completion_tokens": 100},
            {"stage": "instances", "sent": 0, "answered": 6, "prompt_tokens": 5, "completion_tokens": 50,
             "length": True},
            {"stage": "instances", "sent": 0, "answered": 7, "prompt_tokens": 5, "completion_tokens": 20}]
    t = chat_profile.stage_table(reqs)
    assert t["instructions"] == {"requests": 1, "seconds": 4, "prompt_tokens": 10, "completion_tokens": 100,
                                 "length": 0}
    assert t["instances"] == {"requests": 2, "seconds": 3, "prompt_tokens": 10, "completion_tokens": 70, "length": 1}


def test_record_logs_each_answered_request_by_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(openai_api.OpenAITeacher, "_request", openai_api.OpenAITeacher._request)  # restored after
    log = tmp_path / "requests.jsonl"
    chat_profile.record(str(log))
    body = completion_body("Yes", chat=True, prompt_tokens=7, completion_tokens=1)
    with start_scripted([(200, {}, body)], delay=0.05) as (url, _):
        teacher = openai_api.OpenAITeacher("m", base_url=url, concurrency=1)
        try:
            teacher.complete(["a", "b"], max_tokens=3)
            teacher.complete(["c"], max_tokens=256)
        finally:
            teacher.close()
    reqs = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["stage"] for r in reqs] == ["classify", "classify", "instances"]
    assert all(r["prompt_tokens"] == 7 and r["answered"] - r["sent"] >= 0.05 for r in reqs)
    lines = chat_profile.stage_lines(log, rows=2)
    assert lines[0].startswith("  - classify: 2 requests") and "14 tokens in" in lines[0]
    assert lines[1].startswith("  - instances: 1 requests")
