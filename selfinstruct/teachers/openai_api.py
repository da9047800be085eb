"""Teacher behind any OpenAI-compatible HTTP API (the official one, vLLM, llama.cpp, LiteLLM...).

Requests run concurrently (``asyncio.Semaphore(concurrency)``) on the official
``openai`` client with its own retries turned off: we retry 408/409/429/5xx,
timeouts and connection errors ourselves with exponential backoff and full
jitter, honouring ``Retry-After`` / ``retry-after-ms``. The API key never
appears in an error or a log line: every message goes through ``redact``.
"""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import queue
import random
import re
import threading
import time

from .base import Completion, TeacherError, Usage, cut_at_stop, in_order, progress_bar

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "sk-no-key-needed"  # local servers want the header, not a real key
MAX_API_STOPS = 4  # the official API takes at most 4 stop sequences; the rest are cut locally
RETRY_STATUS = {408, 409, 429}
FATAL_STATUS = {401: "authentication failed", 403: "permission denied", 404: "model or endpoint not found"}
FATAL_CODES = {"insufficient_quota": "quota exhausted (insufficient_quota)"}
# How a JSON schema is asked for, best first: OpenAI's and vLLM's form, then llama-cpp-python's
# ({"type": "json_object", "schema": ...}), then none (the prompt alone asks for JSON).
FORMATS = ("json_schema", "json_object", None)


def response_format(schema: dict | None, form: str | None) -> dict | None:
    """The ``response_format`` request field that asks for ``schema`` in ``form`` (None: no field)."""
    if schema is None or form is None:
        return None
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    return {"type": "json_object", "schema": schema}


def format_refused(exc) -> bool:
    """Whether an error says the server does not take our ``response_format`` (so retrying it is useless)."""
    status = getattr(exc, "status_code", None)
    text = str(exc).lower()
    return status in (400, 422, 500, 501) and ("response_format" in text or "json_schema" in text)


def parse_retry_after(headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)); Retry-After wins, capped."""
    if retry_after is not None:
        return min(cap, retry_after)
    return (rng or random).uniform(0, min(cap, base * 2 ** attempt))


def redact(text: str, secret: str | None) -> str:
    """One line, at most 300 characters, with ``secret`` masked."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def describe(exc) -> str:
    """``Type: message``, plus the underlying cause for connection errors (the openai one says little)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _error_code(exc) -> str | None:
    """The API's machine-readable error code (``insufficient_quota``...), if the body has one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code") or inner.get("type")
        return str(code) if code else None
    return None


def _classify(exc) -> tuple[str, float | None]:
    """('retry' | 'fatal' | 'fail' | 'connection', retry_after) for an openai exception."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return ("retry" if isinstance(exc, openai.APITimeoutError) else "connection"), None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in FATAL_STATUS or _error_code(exc) in FATAL_CODES:
            return "fatal", None
        if status in RETRY_STATUS or status >= 500:
            return "retry", parse_retry_after(exc.response.headers)
        return "fail", None
    return "fail", None  # e.g. a malformed response body


class _LoopThread:
    """One event loop in a daemon thread for the teacher's lifetime, so one HTTP client serves the run."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-teacher", daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class OpenAITeacher:
    """``openai:MODEL``. ``endpoint='completions'`` sends plain strings to /completions (base models)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 endpoint: str = "chat", concurrency: int = 16, timeout: float = 60.0, max_retries: int = 6,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0, check: bool = True,
                 flags: tuple[str, str] = ("--api-key", "--base-url")):
        """``flags``: the command's names for the key and the server URL, as its errors name them."""
        if endpoint not in ("chat", "completions"):
            raise TeacherError(f"endpoint must be 'chat' or 'completions', not {endpoint!r}")
        if not model:
            raise TeacherError("openai teacher needs a model name: openai:MODEL")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        official = base_url is None or "api.openai.com" in base_url
        if api_key is None:
            if official:
                raise TeacherError(f"OPENAI_API_KEY is not set (export it, pass {flags[0]}, "
                                   f"or point {flags[1]} at an OpenAI-compatible server)")
            api_key = PLACEHOLDER_KEY
        self.model, self.endpoint = model, endpoint
        self.base_url = (base_url or OFFICIAL_URL).rstrip("/")
        self._key = api_key
        self.name = f"openai:{model}"
        self.is_chat = endpoint == "chat"
        self.usage = Usage()
        self.concurrency, self.timeout, self.max_retries = max(1, concurrency), timeout, max(0, max_retries)
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.usage_reported = True  # False once a response came without token usage
        self._loop: _LoopThread | None = None
        self._client = None
        self.structured = self.is_chat  # takes a JSON schema (``schema=``) for chat requests
        self.format = FORMATS[0]  # the response_format form this server takes; falls back as it refuses
        if check:
            self.check()

    def __repr__(self):
        return f"OpenAITeacher({self.name!r}, base_url={self.base_url!r})"

    def _redact(self, text) -> str:
        return redact(str(text), self._key)

    def _client_kwargs(self) -> dict:
        return dict(api_key=self._key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def check(self, attempts: int = 3) -> None:
        """Fail fast: TeacherError when the server is unreachable or refuses our key."""
        import openai

        kwargs = self._client_kwargs() | {"timeout": min(self.timeout, 10.0)}
        with openai.OpenAI(**kwargs) as client:
            for attempt in range(attempts):
                try:
                    client.models.list()
                    return
                except openai.APIConnectionError as e:
                    last = e
                    if attempt + 1 < attempts:
                        time.sleep(0.5 * 2 ** attempt)
                except openai.APIStatusError as e:
                    if e.status_code in (401, 403):
                        raise TeacherError(f"{FATAL_STATUS[e.status_code]} at {self.base_url}: "
                                           f"{self._redact(e)}") from None
                    return  # it answered; /models may just not exist there
        raise TeacherError(f"cannot reach {self.base_url}: {self._redact(describe(last))}") from None

    # ------------------------------------------------------------------ requests

    def _async_client(self):
        """The run's one AsyncOpenAI client (made lazily inside the loop's thread)."""
        import openai

        if self._client is None:
            self._client = openai.AsyncOpenAI(**self._client_kwargs())
        return self._client

    def stream(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
               stop: list[str] | None = None, progress: str | None = None, schema: dict | None = None):
        """Yield ``(index, Completion)`` as each request finishes (all are in flight at once, up to
        ``concurrency``), so no answer waits for a slow one.

        ``schema`` (chat only): a JSON schema the answer must follow, sent as ``response_format`` in
        the first form of ``FORMATS`` the server takes; a server that refuses every form gets the
        request without it (the prompt itself asks for JSON, and the parsers read text too).

        A request that fails for good yields ``finish_reason='error'``. Raises TeacherError for setup
        problems (401/403/404, quota exhausted) and, once the call is over, when *every* request failed
        the same way that no retry fixes (server gone, or the same 4xx for two or more requests).
        """
        if not prompts:
            return
        if not self.is_chat and not all(isinstance(p, str) for p in prompts):
            raise TeacherError("the completions endpoint takes plain string prompts, not chat messages")
        params = dict(model=self.model, max_tokens=max_tokens, temperature=temperature, top_p=top_p)
        if stop:
            params["stop"] = list(stop)[:MAX_API_STOPS]
        if schema is not None and self.is_chat:
            params["schema"] = schema  # turned into response_format per request (see _request)
        if self._loop is None:
            self._loop = _LoopThread()
        done: queue.Queue = queue.Queue()
        sem_box = {}

        async def one(i, prompt):
            if "sem" not in sem_box:
                sem_box["sem"] = asyncio.Semaphore(self.concurrency)
            try:
                done.put((i, await self._one(self._async_client(), sem_box["sem"], prompt, params, stop)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                done.put((i, e))

        futures = [self._loop.submit(one(i, p)) for i, p in enumerate(prompts)]
        failures = []
        try:
            with progress_bar(len(prompts), progress) as bar:
                for _ in prompts:
                    i, got = done.get()
                    if isinstance(got, BaseException):
                        raise got
                    completion, kind = got
                    bar.update(1)
                    if kind != "ok":
                        failures.append((kind, completion.error))
                    yield i, completion
        finally:
            for f in futures:
                f.cancel()
        if len(failures) == len(prompts):
            self._raise_if_hopeless(failures)

    def _raise_if_hopeless(self, failures: list[tuple[str, str]]) -> None:
        """Every request of a call failed: stop the run when no retry can help."""
        kinds = {k for k, _ in failures}
        if kinds == {"connection"}:
            raise TeacherError(f"cannot reach {self.base_url}: every request failed "
                               f"({failures[0][1]}); the server went away, rerun when it is back")
        first = _error_key(failures[0][1])
        if kinds == {"fail"} and len(failures) > 1 and all(_error_key(e) == first for _, e in failures):
            raise TeacherError(f"every request to {self.base_url} (model {self.model}) failed the same way, "
                               f"which no retry fixes: {failures[0][1]}")

    def complete(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
                 stop: list[str] | None = None, progress: str | None = None,
                 schema: dict | None = None) -> list[Completion]:
        """One Completion per prompt, in order (see ``stream``)."""
        return in_order(self.stream(prompts, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                     stop=stop, progress=progress, schema=schema), len(prompts))

    async def _request(self, client, prompt, params):
        if self.endpoint == "chat":
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            params = dict(params)
            fmt = response_format(params.pop("schema", None), self.format)
            if fmt is not None:
                params["response_format"] = fmt
            resp = await client.chat.completions.create(messages=prompt, **params)
            if not resp.choices:
                raise ValueError("the server answered with no choices")
            choice = resp.choices[0]
            return (choice.message.content or ""), choice.finish_reason, resp.usage
        resp = await client.completions.create(prompt=prompt, **params)
        if not resp.choices:
            raise ValueError("the server answered with no choices")
        choice = resp.choices[0]
        return (choice.text or ""), choice.finish_reason, resp.usage

    async def _one(self, client, sem, prompt, params, stop) -> tuple[Completion, str]:
        async with sem:
            self.usage.requests += 1
            attempt = 0
            while True:
                form = self.format
                try:
                    text, finish, usage = await self._request(client, prompt, params)
                except Exception as e:  # noqa: BLE001 - classified below, never leaks the key
                    if "schema" in params and form is not None and format_refused(e):
                        self._refused(form, e)
                        continue  # the same request in the next form; no retry is spent
                    kind, retry_after = _classify(e)
                    if kind == "fatal":
                        what = FATAL_CODES.get(_error_code(e)) or FATAL_STATUS.get(e.status_code, "refused")
                        raise TeacherError(f"{what} at {self.base_url} (model {self.model}): "
                                           f"{self._redact(e)}") from None
                    if kind == "fail" or attempt == self.max_retries:
                        self.usage.failures += 1
                        error = self._redact(describe(e))
                        if attempt:
                            error += f" (after {attempt} retries)"
                        log.info("request failed: %s", error)
                        return Completion("", finish_reason="error", error=error), kind
                    self.usage.retries += 1
                    wait = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap,
                                         retry_after=retry_after)
                    log.debug("retry %d in %.2fs: %s", attempt + 1, wait, self._redact(e))
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
                return self._completion(text, finish, usage, stop), "ok"

    def _refused(self, form: str, exc) -> None:
        """The server refused ``response_format`` in ``form``: every later request uses the next form."""
        if self.format == form:
            self.format = FORMATS[FORMATS.index(form) + 1]
            log.info("%s refuses response_format %s (%s); next: %s", self.base_url, form,
                     self._redact(exc)[:120], self.format or "none (the prompt asks for JSON)")

    def _completion(self, text, finish, usage, stop) -> Completion:
        text, cut = cut_at_stop(text, stop)
        reason = "length" if finish == "length" and not cut else "stop"
        if usage is None:
            if self.usage_reported:
                log.warning("%s returns no token usage; its cost is unknown", self.base_url)
            self.usage_reported = False
            self.usage.unreported += 1
            p_tok = c_tok = 0
        else:
            p_tok, c_tok = usage.prompt_tokens or 0, usage.completion_tokens or 0
        self.usage.prompt_tokens += p_tok
        self.usage.completion_tokens += c_tok
        return Completion(text, p_tok, c_tok, reason)

    def close(self) -> None:
        """Close the run's HTTP client and stop its event loop."""
        if self._loop is None:
            return
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._loop.submit(self._client.close()).result(timeout=5)
        self._loop.stop()
        self._loop, self._client = None, None


def _error_key(error: str | None) -> str:
    """An error message without its retry count, to tell 'the same error' apart."""
    return re.sub(r" \(after \d+ retries\)$", "", error or "")
