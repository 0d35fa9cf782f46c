"""The `openai` agent backend: any OpenAI-compatible Chat Completions endpoint
(OpenAI, llama.cpp's server, vLLM, Ollama ...) through the official `openai` client.

Per request it: answers from the response cache when it can (nothing spent); stops
with SpendLimitReached once the limit is reached; sends the request with JSON-schema
structured output (or, when enabled, a llama.cpp GBNF grammar); retries rate limits,
server errors, timeouts and dropped connections with exponential backoff; and prices
the reply from the API's usage fields. The openai client's own retries are off, so
every retry is ours and is counted.

Endpoint failures that a rerun may fix raise BackendUnavailable; requests the
endpoint refuses raise BackendRejected. Both are AgentErrors with a one-line message
naming the endpoint. A reply's text is returned as is: it is untrusted data that the
caller parses and checks.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from typing import Any, Mapping

from genesys_dsl.agents.backend import ROLES, AgentBackend, AgentError, AgentReply, AgentRequest
from genesys_dsl.agents.response_cache import ResponseCache, request_key
from genesys_dsl.agents.spending import Ledger, Totals

from .openai_config import Endpoint, Settings, load_settings

log = logging.getLogger(__name__)

# words in a 400 answer that mean "this server does not do structured output"
_STRUCTURED_OUTPUT_WORDS = ("response_format", "json_schema", "structured output")


class BackendUnavailable(AgentError):
    """The endpoint gave no usable answer (down, hanging, rate-limited past every
    retry, or speaking something other than the Chat Completions protocol)."""


class BackendRejected(AgentError):
    """The endpoint refused the request itself (bad key, unknown model, bad parameters)."""


class OpenAIClient:
    """An AgentClient over one or more OpenAI-compatible endpoints (one per role)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger = Ledger(settings.prices, settings.limit)
        self.cache = ResponseCache(settings.cache_dir) if settings.cache_dir else None
        self._clients: dict[tuple[str | None, str], Any] = {}
        self._without_structured_output: set[str] = set()  # endpoints that refused response_format
        self._jitter = random.Random(settings.retry_seed)

    # -------------------------------------------------------------- the contract

    def complete(self, request: AgentRequest) -> AgentReply:
        started = time.perf_counter()
        endpoint = self._endpoint(request.role)
        grammar = request.grammar if self.settings.grammar else None
        key = request_key(request, endpoint.model, grammar)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                # tokens and seconds stay those of the original answer; nothing is spent now
                self.ledger.record_cache_hit(hit.cost)
                return replace(hit, cached=True, cost=0.0)
        self.ledger.check_limit()
        completion = self._send_with_retries(endpoint, request, grammar)
        reply = self._reply(completion, endpoint, time.perf_counter() - started)
        self.ledger.record_reply(reply)
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply

    def totals(self) -> Totals:
        """Requests, cache hits, retries, tokens, dollars spent and saved so far."""
        return self.ledger.totals()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- sending

    def _endpoint(self, role: str) -> Endpoint:
        endpoint = self.settings.endpoints.get(role)
        if endpoint is None:
            raise AgentError(f"unknown agent role {role!r}; the roles are {', '.join(ROLES)}")
        if isinstance(endpoint, AgentError):
            raise AgentError(str(endpoint))  # this role has no model configured
        return endpoint

    def _client(self, endpoint: Endpoint):
        import openai

        key = (endpoint.base_url, endpoint.api_key)
        if key not in self._clients:
            self._clients[key] = openai.OpenAI(
                base_url=endpoint.base_url, api_key=endpoint.api_key,
                timeout=self.settings.timeout, max_retries=0)  # our retries are the ones counted
        return self._clients[key]

    def _send_with_retries(self, endpoint: Endpoint, request: AgentRequest, grammar: str | None):
        import openai

        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._send(endpoint, request, grammar)
            except openai.APIError as err:
                if not _retryable(err):
                    raise _refusal(err, endpoint) from None
                if attempt + 1 == attempts:
                    raise BackendUnavailable(f"{endpoint.label}: {_describe(err)}; gave up after "
                                             f"{attempts} attempt{'s' * (attempts > 1)}") from None
                delay = self._delay(attempt, err)
                log.info("%s: %s; retry %d of %d in %.2fs", endpoint.label, _describe(err),
                         attempt + 1, self.settings.max_retries, delay)
                self.ledger.record_retry()
                time.sleep(delay)
            except ValueError as err:  # a 200 whose body is not JSON
                raise BackendUnavailable(f"{endpoint.label} did not answer in the Chat Completions "
                                         f"protocol: {_short(str(err))}") from None
        raise AssertionError("unreachable: the loop returns or raises")

    def _send(self, endpoint: Endpoint, request: AgentRequest, grammar: str | None):
        import openai

        arguments: dict[str, Any] = {
            "model": endpoint.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            arguments["seed"] = request.seed
        if grammar is not None:
            # llama.cpp refuses a grammar and a response_format together; the grammar is stricter
            arguments["extra_body"] = {"grammar": grammar}
        elif self._wants_structured_output(endpoint, request):
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": f"{request.role}_reply", "schema": dict(request.response_schema),
                                "strict": False},
            }
        try:
            return self._client(endpoint).chat.completions.create(**arguments)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as err:
            if "response_format" in arguments and _mentions_structured_output(err):
                # remembered for the endpoint: later requests go without it at once
                log.info("%s does not support structured output (%s); falling back to plain text",
                         endpoint.label, _describe(err))
                self._without_structured_output.add(endpoint.label)
                del arguments["response_format"]
                return self._client(endpoint).chat.completions.create(**arguments)
            raise

    def _wants_structured_output(self, endpoint: Endpoint, request: AgentRequest) -> bool:
        return (request.response_schema is not None and self.settings.structured_output
                and endpoint.label not in self._without_structured_output)

    def _delay(self, attempt: int, err: Exception) -> float:
        """Exponential backoff with seeded jitter; a server's Retry-After wins when shorter than the cap."""
        cap = self.settings.retry_max_delay
        retry_after = _retry_after(err)
        if retry_after is not None:
            return min(retry_after, cap)
        delay = self.settings.retry_base_delay * 2 ** attempt
        return min(cap, delay * (1 + 0.25 * self._jitter.random()))

    # -------------------------------------------------------------- the reply

    def _reply(self, completion: Any, endpoint: Endpoint, seconds: float) -> AgentReply:
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
            raise BackendUnavailable(f"{endpoint.label} did not answer in the Chat Completions protocol: "
                                     f"the body has no choices[0].message")
        choice = choices[0]
        usage = getattr(completion, "usage", None)
        prompt_tokens = _count(getattr(usage, "prompt_tokens", 0))
        completion_tokens = _count(getattr(usage, "completion_tokens", 0))
        model = getattr(completion, "model", None) or endpoint.model
        content = choice.message.content
        return AgentReply(
            text=content if isinstance(content, str) else "",
            model=str(model),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=self.ledger.cost_of((endpoint.model, str(model)), prompt_tokens, completion_tokens),
            cached=False,
            finish_reason=str(choice.finish_reason or ""),
            seconds=seconds,
        )


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: Exception) -> str:
    """An API error as 'HTTP 429: message' or the error's kind."""
    status = getattr(err, "status_code", None)
    body = getattr(err, "body", None)  # the parsed `error` object of an OpenAI-shaped error
    message = body.get("message") if isinstance(body, dict) else None
    message = _short(str(message or getattr(err, "message", None) or err or type(err).__name__))
    if status is not None:
        return f"HTTP {status}: {message}"
    kind = {"APITimeoutError": "timed out", "APIConnectionError": "connection failed"}.get(type(err).__name__)
    return f"{kind} ({message})" if kind else message


def _retryable(err: Exception) -> bool:
    """Worth asking again: rate limits, server errors, timeouts, dropped connections
    (the statuses the openai client itself would retry)."""
    import openai

    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    status = getattr(err, "status_code", None)
    return isinstance(err, openai.APIStatusError) and status is not None and (status in (408, 409, 429)
                                                                                or status >= 500)


def _refusal(err: Exception, endpoint: Endpoint) -> AgentError:
    """The error for an answer that asking again will not change."""
    import openai

    if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return BackendRejected(f"{endpoint.label} refused the API key: {_describe(err)}; "
                               f"check OPENAI_API_KEY or `api_key` in the agent config")
    if isinstance(err, openai.NotFoundError):
        return BackendRejected(f"{endpoint.label}: {_describe(err)} (is the model name "
                               f"'{endpoint.model}' and the base URL right?)")
    if isinstance(err, openai.APIStatusError):
        return BackendRejected(f"{endpoint.label} rejected the request: {_describe(err)}")
    # APIResponseValidationError and the like: a body of the wrong shape
    return BackendUnavailable(f"{endpoint.label} did not answer in the Chat Completions protocol: "
                              f"{_short(str(err))}")


def _mentions_structured_output(err: Exception) -> bool:
    text = f"{getattr(err, 'message', '')} {getattr(err, 'body', '')}".lower()
    return any(word in text for word in _STRUCTURED_OUTPUT_WORDS)


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own schedule
    return seconds if seconds is not None and seconds >= 0 else None


def create(config: Mapping[str, Any]) -> OpenAIClient:
    return OpenAIClient(load_settings(config))


BACKEND = AgentBackend(
    name="openai",
    summary="any OpenAI-compatible Chat Completions endpoint (OpenAI, llama.cpp, vLLM, Ollama), "
            "with structured output, GBNF grammars, a response cache, retries and a spend limit",
    create=create,
)
