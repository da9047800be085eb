"""The openai teacher against real HTTP servers on 127.0.0.1: llm-katan, and a scripted server for
what llm-katan cannot do (Retry-After headers, /v1/completions, missing usage). Never a mocked client."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from selfinstruct.teachers.openai_api import OpenAITeacher
from selfinstruct.teachers import TeacherError, Usage, make_teacher
from servers import completion_body, free_port, start_katan, start_scripted

pytestmark = pytest.mark.server

KEY = "sk-test-SECRET-0123456789"  # what we must never show
GOOD = "sk-katan-good-key"  # what the llm-katan fixture accepts


def teacher(url, **kw):
    kw = {"api_key": GOOD, "backoff_base": 0.01, "backoff_cap": 0.05, **kw}
    return OpenAITeacher("echo-model", base_url=url, **kw)


@pytest.fixture(scope="module")
def katan():
    """Echo server answering after 200 ms, 64 at a time, checking our key."""
    with start_katan("--latency-ms", "200", "--max-concurrent", "64",
                     "--validate-keys", "--api-keys", f"openai={GOOD}") as url:
        yield url


def test_chat_completions_and_usage(katan):
    t = make_teacher("openai:echo-model", base_url=katan, api_key=GOOD)
    assert t.name == "openai:echo-model" and t.is_chat
    prompts = [[{"role": "user", "content": f"say {i} words please"}] for i in range(5)] + ["plain string"]
    out = t.complete(prompts, max_tokens=7, temperature=0.2)
    for p, c in zip(prompts, out):
        user = p if isinstance(p, str) else p[0]["content"]
        assert c.finish_reason == "stop" and c.error is None
        assert c.text.endswith(f"User: {user}") and "max_tokens=7 temperature=0.2" in c.text
        assert c.prompt_tokens == len(user.split())  # llm-katan counts words
        assert c.completion_tokens == len(c.text.split())
    assert t.usage == Usage(requests=6, prompt_tokens=sum(c.prompt_tokens for c in out),
                            completion_tokens=sum(c.completion_tokens for c in out))
    cut = t.complete(["abc"], stop=["User:"])[0]  # echo ignores stop; we cut locally
    assert "User:" not in cut.text and cut.text.startswith("[echo]") and cut.finish_reason == "stop"


def test_requests_overlap(katan):
    t = teacher(katan, concurrency=16)
    t0 = time.monotonic()
    out = t.complete([f"q{i}" for i in range(16)], max_tokens=4)
    elapsed = time.monotonic() - t0
    assert all(c.error is None for c in out)
    assert elapsed < 8 * 0.2  # serial would take 16 x 0.2 s; a correctness check of overlap, not a benchmark


def test_concurrency_is_bounded():
    with start_scripted([(200, {}, completion_body("ok", chat=True))], delay=0.15) as (url, seen):
        out = teacher(url, concurrency=3).complete([f"q{i}" for i in range(10)])
    assert [c.text for c in out] == ["ok"] * 10
    assert seen.max_inflight == 3


def test_key_never_leaks(katan, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TeacherError) as e:  # llm-katan echoes the wrong key back in its 401 body
        make_teacher("openai:echo-model", base_url=katan, api_key=KEY)
    assert "authentication failed" in str(e.value) and KEY not in str(e.value) and "got '***'" in str(e.value)
    t = teacher(katan, api_key=KEY, check=False)
    with pytest.raises(TeacherError) as e:
        t.complete(["hi", "there"])
    assert "authentication failed" in str(e.value) and KEY not in str(e.value)
    body = {"error": {"message": f"bad request from key {KEY}", "type": "invalid_request_error"}}
    with start_scripted([(400, {}, body)]) as (url, _):
        c = teacher(url, api_key=KEY).complete(["x"])[0]
    assert c.finish_reason == "error" and "BadRequestError" in c.error
    assert KEY not in c.error and "bad request from key ***" in c.error
    assert KEY not in caplog.text and "bad request from key ***" in caplog.text
    assert KEY not in repr(t) and KEY not in t.name


def test_server_errors_are_retried():
    with start_katan("--error-rate", "0.3", "--max-concurrent", "16") as url:
        t = teacher(url, max_retries=10)
        out = t.complete([f"q{i}" for i in range(40)], max_tokens=4)
    assert all(c.error is None and c.text.endswith(f"User: q{i}") for i, c in enumerate(out))
    assert t.usage.requests == 40 and t.usage.failures == 0
    assert t.usage.retries >= 1  # P(no 500 in 40 draws at 30%) = 0.7**40 < 1e-6


def test_rate_limit_exhausts_retries():
    with start_katan("--rate-limit-after", "2") as url:
        t = teacher(url, concurrency=1, max_retries=2)
        out = t.complete(["a", "b", "c", "d"])
    assert [c.finish_reason for c in out] == ["stop", "stop", "error", "error"]
    assert "RateLimitError" in out[2].error and "429" in out[2].error and "after 2 retries" in out[2].error
    assert t.usage.as_dict() == {"requests": 4, "retries": 4, "failures": 2,
                                 "prompt_tokens": 2, "completion_tokens": out[0].completion_tokens * 2, "unreported": 0}


def test_gateway_timeouts_become_error_completions():
    with start_katan("--timeout-after", "1") as url:
        t = teacher(url, concurrency=4, max_retries=3)
        out = t.complete(["a", "b", "c"])  # first one served; the rest get 504 forever
    assert sorted(c.finish_reason for c in out) == ["error", "error", "stop"]
    errors = [c.error for c in out if c.error]
    assert all("InternalServerError" in e and "504" in e and "after 3 retries" in e for e in errors)
    assert (t.usage.failures, t.usage.retries) == (2, 6)


def test_retry_after_is_honoured():
    limited = (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}})
    ms = (503, {"retry-after-ms": "300"}, {"error": {"message": "busy"}})
    ok = (200, {}, completion_body("done", chat=True))
    with start_scripted([limited, ms, ok]) as (url, seen):
        t = teacher(url, backoff_base=0.001, backoff_cap=60)
        out = t.complete(["x"])
    assert out[0].text == "done" and t.usage.retries == 2
    waits = [b - a for a, b in zip(seen.times, seen.times[1:])]
    assert 0.95 <= waits[0] < 5 and 0.28 <= waits[1] < 4  # backoff alone would wait ~1 ms
    with start_scripted([(429, {"Retry-After": "3600"}, {}), ok]) as (url, seen):
        t = teacher(url, backoff_cap=0.2)
        assert t.complete(["x"])[0].text == "done"
    assert seen.times[1] - seen.times[0] < 5  # an hour, capped at 0.2 s


def test_completions_endpoint_for_base_models():
    reply = (200, {}, completion_body("one two\n\nthree", chat=False, finish="length"))
    with start_scripted([reply]) as (url, seen):
        t = make_teacher("openai:base-model", base_url=url, api_key=KEY, endpoint="completions")
        assert t.is_chat is False
        stops = ["A", "B", "C", "D", "\n\n"]
        cut, whole = t.complete(["Once upon a time"], stop=stops)[0], t.complete(["x"], top_p=0.9)[0]
        with pytest.raises(TeacherError, match="plain string prompts"):
            t.complete([[{"role": "user", "content": "hi"}]])
    assert seen.bodies[0]["prompt"] == "Once upon a time" and seen.bodies[0]["model"] == "base-model"
    assert seen.bodies[0]["stop"] == ["A", "B", "C", "D"]  # the API takes 4; the 5th is cut here
    assert (cut.text, cut.finish_reason) == ("one two", "stop")
    assert (whole.text, whole.finish_reason) == ("one two\n\nthree", "length")
    assert seen.bodies[1]["top_p"] == 0.9 and "stop" not in seen.bodies[1]
    assert seen.headers[0]["authorization"] == f"Bearer {KEY}"


def test_missing_usage_counts_zero():
    body = completion_body("hi", chat=True)
    del body["usage"]
    with start_scripted([(200, {}, body)]) as (url, _):
        t = teacher(url)
        c = t.complete(["x"])[0]
    assert (c.text, c.prompt_tokens, c.completion_tokens) == ("hi", 0, 0)
    assert t.usage_reported is False and t.usage.requests == 1
    assert t.usage.unreported == 1  # so the cost is unknown, never $0
    from selfinstruct.teachers import estimate_cost
    assert estimate_cost(t.usage, 1.0, 2.0) is None


def test_the_same_4xx_on_every_request_stops_the_call():
    """A model that rejects an argument answers 400 to everything: no retry fixes it, so stop."""
    body = {"error": {"message": "Unsupported parameter: 'max_tokens'", "type": "invalid_request_error"}}
    with start_scripted([(400, {}, body)] * 3) as (url, _):
        t = teacher(url)
        with pytest.raises(TeacherError, match="failed the same way.*Unsupported parameter"):
            t.complete(["a", "b", "c"])
    assert t.usage.failures == 3 and t.usage.retries == 0


def test_a_4xx_on_some_requests_does_not_stop_the_call():
    body = {"error": {"message": "prompt too long", "type": "invalid_request_error"}}
    with start_scripted([(400, {}, body), (200, {}, completion_body("ok", chat=True))]) as (url, _):
        out = teacher(url, concurrency=1).complete(["a", "b"])
    assert [c.finish_reason for c in out] == ["error", "stop"]


def test_quota_exhausted_is_fatal_at_once():
    body = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                      "code": "insufficient_quota"}}
    with start_scripted([(429, {}, body)]) as (url, _):
        t = teacher(url)
        with pytest.raises(TeacherError, match="quota exhausted"):
            t.complete(["a"])
    assert t.usage.retries == 0


def test_one_client_serves_the_run(katan):
    t = teacher(katan)
    t.complete(["a"])
    client = t._client
    t.complete(["b", "c"])
    assert t._client is client  # one connection pool for the run, not one per call
    t.close()
    assert t._client is None


def test_model_missing_is_fatal():
    with start_scripted([(404, {}, {"error": {"message": "The model `nope` does not exist"}})]) as (url, _):
        t = make_teacher("openai:nope", base_url=url)  # no key needed for a custom base URL
        with pytest.raises(TeacherError, match="model or endpoint not found.*does not exist"):
            t.complete(["x", "y"])


def test_unreachable_at_start():
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(TeacherError, match=f"cannot reach {url}"):
        make_teacher("openai:m", base_url=url)
    assert time.monotonic() - t0 < 10


def test_server_restart_mid_run_and_server_gone():
    port = free_port()
    with start_katan(port=port) as url:
        t = teacher(url, max_retries=20, backoff_base=0.25, backoff_cap=3.0)
        assert t.complete(["before"])[0].error is None
    # the server is down: a run that starts now waits, and finishes once a new server comes up
    box = {}
    worker = threading.Thread(target=lambda: box.update(out=t.complete([f"q{i}" for i in range(6)])))
    worker.start()
    time.sleep(0.5)
    with start_katan(port=port):
        worker.join(60)
    assert [c.error for c in box["out"]] == [None] * 6 and t.usage.retries >= 6
    # it is gone for good: every request fails to connect, which stops the run with one clear line
    quick = teacher(url, max_retries=1, check=False)
    with pytest.raises(TeacherError, match="cannot reach .*every request failed.*rerun"):
        quick.complete(["a", "b"])
    assert quick.usage.failures == 2


@pytest.mark.slow
def test_transformers_backend_serves_a_local_model(tmp_path):
    from tiny import make_tiny_model_dir

    folder = make_tiny_model_dir(tmp_path / "m", tie=False, seed=1)
    with start_katan("--backend", "transformers", "--model", str(folder), "--name", "tiny",
                     "--device", "cpu", "--no-quantize", ready_timeout=120) as url:
        t = make_teacher("openai:tiny", base_url=url)
        out = t.complete([[{"role": "user", "content": "What is the capital of France?"}]], max_tokens=8,
                         temperature=0)
    assert out[0].error is None and out[0].text.strip()
    assert out[0].completion_tokens == 8 and out[0].prompt_tokens > 5  # real token counts from the model


SCHEMA = {"type": "object", "properties": {"tasks": {"type": "array", "items": {"type": "string"}}}}


def test_response_format_falls_back_to_what_the_server_takes():
    """OpenAI's json_schema first; llama-cpp-python refuses it with a 500 naming response_format, so the
    next request (and every later one) asks in its form, json_object with a schema; no retry is spent."""
    refusal = {"error": {"message": "1 validation error: ('body', 'response_format', 'type') Input should be "
                                    "'text' or 'json_object'", "type": "internal_server_error"}}

    def script(body):
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return 500, {}, refusal
        return 200, {}, completion_body('{"tasks": ["a"]}', chat=True)

    with start_scripted(script) as (url, seen):
        t = teacher(url, max_retries=3, concurrency=1)
        out = t.complete(["x", "y"], schema=SCHEMA)
        plain = t.complete(["z"])
    assert [c.text for c in out] == ['{"tasks": ["a"]}'] * 2 and t.usage.retries == 0 and t.usage.failures == 0
    assert t.format == "json_object"
    assert [(b.get("response_format") or {}).get("type") for b in seen.bodies] == \
        ["json_schema", "json_object", "json_object", None]
    assert seen.bodies[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert seen.bodies[1]["response_format"]["schema"] == SCHEMA and "schema" not in seen.bodies[3]


def test_response_format_refused_in_every_form_sends_none():
    def script(body):
        if "response_format" in body:
            return 400, {}, {"error": {"message": "response_format is not supported by this model"}}
        return 200, {}, completion_body("1. A task", chat=True)

    with start_scripted(script) as (url, seen):
        t = teacher(url, concurrency=1)
        out = t.complete(["x", "y"], schema=SCHEMA)
    assert [c.text for c in out] == ["1. A task"] * 2 and t.format is None and t.usage.failures == 0
    assert ["response_format" in b for b in seen.bodies] == [True, True, False, False]


def test_completions_endpoint_never_sends_a_schema():
    with start_scripted([(200, {}, completion_body("text", chat=False))]) as (url, seen):
        t = teacher(url, endpoint="completions")
        assert t.structured is False
        t.complete(["x"], schema=SCHEMA)
    assert "response_format" not in seen.bodies[0] and "schema" not in seen.bodies[0]


def test_no_choices_and_empty_content_are_answers_not_crashes():
    empty = completion_body("", chat=True)
    none = {**completion_body("", chat=True), "choices": []}
    with start_scripted([(200, {}, none), (200, {}, empty)]) as (url, _):
        out = teacher(url, concurrency=1).complete(["a", "b"], schema=SCHEMA)
    assert out[0].finish_reason == "error" and "no choices" in out[0].error
    assert (out[1].text, out[1].finish_reason, out[1].error) == ("", "stop", None)


def test_katan_json_object_answers_json_of_the_wrong_shape(katan):
    """llm-katan's echo backend answers {"response": ...} under json_object: the parsers reject it."""
    from selfinstruct.generation.parsing import parse_instances, parse_instructions

    t = teacher(katan)
    t.format = "json_object"
    [c] = t.complete([[{"role": "user", "content": "list tasks"}]], schema=SCHEMA)
    assert c.text.startswith('{"response": ')
    assert [r for _, r in parse_instructions(c.text).rejected] == ["unexpected_json"]
    assert parse_instances(c.text, classification=False).items == []
