"""A scripted Chat Completions server on loopback, for testing the `openai` backend
through the real `openai` client.

Each POST to /v1/chat/completions takes the next `Step` from the script (or asks the
`respond` callable) and answers with its status, body and delay. Every request body
is recorded, parsed, in `server.requests`. An exhausted script answers HTTP 418 so a
test that sends more requests than it scripted fails loudly.

    with FakeOpenAIServer([reply("hello"), Step(status=429)]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Step:
    """One scripted answer. `body` is JSON-encoded unless it is bytes (sent raw)."""

    status: int = 200
    body: Any = None
    delay: float = 0.0  # seconds to wait before answering (a hang, when past the client's timeout)
    headers: dict[str, str] = field(default_factory=dict)


def reply(text: str | None, prompt_tokens: int = 11, completion_tokens: int = 7,
          finish_reason: str = "stop", model: str = "fake-model", usage: bool = True) -> Step:
    """A successful chat completion whose message content is `text`."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text}}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return Step(body=body)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Step:
    """An API error in OpenAI's error shape."""
    return Step(status=status, body={"error": {"message": message, "type": "fake_error", "code": status}},
                headers=headers or {})


class FakeOpenAIServer:
    """A threaded HTTP server on 127.0.0.1 with a free port, serving a script."""

    def __init__(self, script: Iterable[Step] = (), respond: Callable[[dict], Step] | None = None) -> None:
        self.script: deque[Step] = deque(script)
        self.respond = respond
        self.requests: list[dict] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True  # a hanging answer never blocks shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def add(self, *steps: Step) -> None:
        with self._lock:
            self.script.extend(steps)

    def _next(self, request: dict) -> Step:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.popleft()
        if self.respond is not None:
            return self.respond(request)
        return error(418, "fake server: no scripted response left")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    request = json.loads(raw)
                except ValueError:
                    request = {"unparsed": raw.decode("utf-8", "replace")}
                if self.path.rstrip("/") != "/v1/chat/completions":
                    step = error(404, f"fake server: no route {self.path}")
                else:
                    step = server._next(request)
                if step.delay and server._closing.wait(step.delay):
                    return  # closing: drop the connection
                body = step.body if isinstance(step.body, bytes) else json.dumps(step.body).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in step.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

        return Handler

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
