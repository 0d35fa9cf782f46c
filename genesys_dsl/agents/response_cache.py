"""An on-disk cache of agent replies, keyed by everything that shapes a reply.

A rerun of the same design round asks the same questions; answering them from disk
makes it free and repeatable. The key is the SHA-256 of the canonical JSON of the
request as sent (model, messages, response schema, grammar, temperature, max tokens,
seed): change any of them and the cache misses. The endpoint's URL is deliberately
not part of the key, so a cache survives a server moving port; the model name says
which model answered.

Entries are written atomically (a temporary file in the same folder, then a rename),
so a crash or a concurrent writer never leaves a half-written entry; an unreadable
entry is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from .backend import AgentError, AgentReply, AgentRequest

log = logging.getLogger(__name__)

# Bump when the key or the entry layout changes, so old entries simply miss.
CACHE_FORMAT = 1


def request_key(request: AgentRequest, model: str, grammar: str | None) -> dict[str, Any]:
    """The parts of a request that determine the reply. `grammar` is the grammar
    actually sent (None when grammar-constrained decoding is off)."""
    return {
        "format": CACHE_FORMAT,
        "model": model,
        "messages": [dict(m) for m in request.messages],
        "response_schema": request.response_schema,
        "grammar": grammar,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
    }


def key_hash(key: Mapping[str, Any]) -> str:
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies on disk under `folder`, one JSON file per request (`ab/abcdef....json`)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AgentError(f"agent response cache: cannot create folder {self.folder}: "
                             f"{err.strerror or err}") from None

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, key: Mapping[str, Any]) -> AgentReply | None:
        path = self._path(key_hash(key))
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("key") != json.loads(json.dumps(key)):
                return None  # a hash collision or a hand-edited entry: not ours
            return AgentReply(**entry["reply"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            log.warning("ignoring unreadable cache entry %s (%s)", path, err)
            return None

    def put(self, key: Mapping[str, Any], reply: AgentReply) -> None:
        path = self._path(key_hash(key))
        entry = {"key": key, "reply": asdict(reply)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(entry, out, ensure_ascii=False, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            # a cache that cannot be written costs money on the next run, not this reply
            log.warning("could not write cache entry %s: %s", path, err.strerror or err)
