"""Real OpenAI-compatible servers on 127.0.0.1 for tests and benches.

``start_katan(*args)`` runs ``llm-katan`` as a subprocess on a free port and
yields its base URL (``http://127.0.0.1:PORT/v1``); ``args`` are extra CLI flags,
e.g. ``start_katan("--error-rate", "0.3")``. Echo backend unless ``--backend``
is among the args. Use it as a context manager; the server is stopped on exit.

``start_scripted(responses)`` serves a fixed script of HTTP replies from a
thread, for what llm-katan cannot do (``Retry-After`` headers, the legacy
/v1/completions endpoint). Both are real HTTP: the openai client is never mocked.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; RuntimeError after ``timeout`` or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready after {timeout:.0f}s")


def katan_command(*args: str, port: int, stats_file: str) -> list[str]:
    exe = shutil.which("llm-katan")
    cmd = [exe] if exe else [sys.executable, "-c", "from llm_katan.cli import main; main()"]
    if "--backend" not in args and "-b" not in args:
        args = ("--backend", "echo") + tuple(args)
    if "--model" not in args and "-m" not in args:
        args = ("--model", "echo-model") + tuple(args)
    return cmd + list(args) + ["--host", "127.0.0.1", "--port", str(port), "--stats-file", stats_file,
                               "--disable-dashboard", "--log-level", "warning"]


@contextlib.contextmanager
def start_katan(*args: str, port: int | None = None, ready_timeout: float = 60.0, log_path: str | None = None):
    """Run llm-katan with ``args``; yield ``http://127.0.0.1:PORT/v1``; stop it on exit.

    ``port`` reuses a given port (to restart a server "in place"); default a free one.
    """
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="katan-") as tmp:
        log_path = log_path or os.path.join(tmp, "server.log")
        cmd = katan_command(*args, port=port, stats_file=os.path.join(tmp, "stats.json"))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            try:
                wait_ready(f"http://127.0.0.1:{port}/health", proc, ready_timeout)
            except RuntimeError as e:
                tail = open(log_path, encoding="utf-8", errors="replace").read()[-2000:]
                raise RuntimeError(f"{e}; command {cmd}; log:\n{tail}") from None
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Scripted:
    """What a scripted server saw: request bodies (JSON), headers (lower-case names), arrival times, most requests in flight."""

    def __init__(self, replies, delay: float = 0.0):
        self.script = replies if callable(replies) else None
        self.replies = [] if callable(replies) else list(replies)
        self.delay = delay
        self.bodies, self.headers, self.times = [], [], []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()

    def next_reply(self, body, headers):
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers)
            self.times.append(time.monotonic())
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            if self.script is not None:  # a function of the request body
                reply = self.script(body)
            else:
                reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        time.sleep(self.delay)
        with self.lock:
            self.inflight -= 1
        return reply


def completion_body(text: str, *, chat: bool, prompt_tokens=3, completion_tokens=5, finish="stop") -> dict:
    choice = {"index": 0, "finish_reason": finish, "logprobs": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {"id": "x", "object": "chat.completion" if chat else "text_completion", "created": 0, "model": "m",
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


@contextlib.contextmanager
def start_scripted(replies, delay: float = 0.0):
    """Serve ``replies`` (a list of (status, headers, body-dict), the last one repeating; or a function of
    the request body giving one) on every POST, each after ``delay`` seconds. GET /v1/models answers an empty list. Yields (base_url, Scripted).
    """
    state = Scripted(replies, delay)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status, headers, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {}, {"object": "list", "data": []})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, body = state.next_reply(json.loads(raw or b"{}"), {k.lower(): v for k, v in self.headers.items()})
            self._send(status, headers, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
