"""Teacher behind any OpenAI-compatible HTTP API (the official one, vLLM, llama.cpp, LiteLLM...).

Requests run concurrently (``asyncio.Semaphore(concurrency)``) on the official
``openai`` client with its own retries turned off: we retry 408/409/429/5xx,
timeouts and connection errors ourselves with exponential backoff and full
jitter, honouring ``Retry-After`` / ``retry-after-ms``. The API key never
appears in an error or a log line: every message goes through ``redact``.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import threading
import time

from .teachers import Completion, TeacherError, Usage, cut_at_stop, progress_bar

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "sk-no-key-needed"  # local servers want the header, not a real key
MAX_API_STOPS = 4  # the official API takes at most 4 stop sequences; the rest are cut locally
RETRY_STATUS = {408, 409, 429}
FATAL_STATUS = {401: "authentication failed", 403: "permission denied", 404: "model or endpoint not found"}


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


def _classify(exc) -> tuple[str, float | None]:
    """('retry' | 'fatal' | 'fail' | 'connection', retry_after) for an openai exception."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return ("retry" if isinstance(exc, openai.APITimeoutError) else "connection"), None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in FATAL_STATUS:
            return "fatal", None
        if status in RETRY_STATUS or status >= 500:
            return "retry", parse_retry_after(exc.response.headers)
        return "fail", None
    return "fail", None  # e.g. a malformed response body


def _run(coro):
    """asyncio.run, also from code that already runs an event loop (it then runs in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class OpenAITeacher:
    """``openai:MODEL``. ``endpoint='completions'`` sends plain strings to /completions (base models)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 endpoint: str = "chat", concurrency: int = 16, timeout: float = 60.0, max_retries: int = 6,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0, check: bool = True):
        if endpoint not in ("chat", "completions"):
            raise TeacherError(f"endpoint must be 'chat' or 'completions', not {endpoint!r}")
        if not model:
            raise TeacherError("openai teacher needs a model name: openai:MODEL")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        official = base_url is None or "api.openai.com" in base_url
        if api_key is None:
            if official:
                raise TeacherError("OPENAI_API_KEY is not set (export it, pass --api-key, "
                                   "or point --base-url at an OpenAI-compatible server)")
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

    def complete(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
                 stop: list[str] | None = None, progress: str | None = None) -> list[Completion]:
        """One Completion per prompt, same order.

        A request that fails for good comes back with ``finish_reason='error'``.
        Raises TeacherError for setup problems (401/403/404) and when *every*
        request of this call failed to connect after all retries (server gone).
        """
        if not prompts:
            return []
        if not self.is_chat and not all(isinstance(p, str) for p in prompts):
            raise TeacherError("the completions endpoint takes plain string prompts, not chat messages")
        params = dict(model=self.model, max_tokens=max_tokens, temperature=temperature, top_p=top_p)
        if stop:
            params["stop"] = list(stop)[:MAX_API_STOPS]
        with progress_bar(len(prompts), progress) as bar:
            results, kinds = _run(self._complete_all(prompts, params, stop, bar))
        if all(k == "connection" for k in kinds):
            raise TeacherError(f"cannot reach {self.base_url}: every request failed "
                               f"({results[0].error}); the server went away, rerun when it is back")
        return results

    async def _complete_all(self, prompts, params, stop, bar):
        import openai

        sem = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(**self._client_kwargs()) as client:
            tasks = [asyncio.ensure_future(self._one(client, sem, p, params, stop, bar)) for p in prompts]
            try:
                pairs = await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
        return [c for c, _ in pairs], [k for _, k in pairs]

    async def _request(self, client, prompt, params):
        if self.endpoint == "chat":
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            resp = await client.chat.completions.create(messages=prompt, **params)
            choice = resp.choices[0]
            return (choice.message.content or ""), choice.finish_reason, resp.usage
        resp = await client.completions.create(prompt=prompt, **params)
        choice = resp.choices[0]
        return (choice.text or ""), choice.finish_reason, resp.usage

    async def _one(self, client, sem, prompt, params, stop, bar) -> tuple[Completion, str]:
        async with sem:
            self.usage.requests += 1
            try:
                for attempt in range(self.max_retries + 1):
                    try:
                        text, finish, usage = await self._request(client, prompt, params)
                    except Exception as e:  # noqa: BLE001 - classified below, never leaks the key
                        kind, retry_after = _classify(e)
                        if kind == "fatal":
                            raise TeacherError(f"{FATAL_STATUS[e.status_code]} at {self.base_url} "
                                               f"(model {self.model}): {self._redact(e)}") from None
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
                        continue
                    return self._completion(text, finish, usage, stop), "ok"
            finally:
                bar.update(1)

    def _completion(self, text, finish, usage, stop) -> Completion:
        text, cut = cut_at_stop(text, stop)
        reason = "length" if finish == "length" and not cut else "stop"
        if usage is None:
            if self.usage_reported:
                log.warning("%s returns no token usage; token counts stay 0", self.base_url)
            self.usage_reported = False
            p_tok = c_tok = 0
        else:
            p_tok, c_tok = usage.prompt_tokens or 0, usage.completion_tokens or 0
        self.usage.prompt_tokens += p_tok
        self.usage.completion_tokens += c_tok
        return Completion(text, p_tok, c_tok, reason)

    def close(self) -> None:
        """Nothing to free: each ``complete`` call opens and closes its own client."""
