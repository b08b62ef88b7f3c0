"""The node's journal of paid jobs: each job runs the model once, however often the relayer asks.

The relayer names the job it dispatches in the request's OpenAI `user` field (``bme-job:<id>``), which the
relayer's signature covers with the rest of the body. When a relayer crashes between sending a job and
recording the answer, it asks again after its restart: the node answers from the journal instead of running
the model a second time, so a job is served at most once. A request with the same job name but another body
is refused.

With a file, the journal is an append-only JSON-lines log that survives a restart of the node: one line per
job when the request arrives (its arrival time, for latency measurements) and one when the answer is ready.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bme.credential import JOB_PREFIX
from bme.node.errors import InvalidRequest


@dataclass
class _Entry:
    body_sha256: str
    answer: dict[str, Any] | None = None
    pending: asyncio.Future[dict[str, Any]] | None = None


class JobJournal:
    """Answers of paid jobs by job name, in memory (bounded) and optionally in an append-only file."""

    def __init__(self, path: Path | None = None, capacity: int = 100_000) -> None:
        self.path = path
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.executed = 0
        self.replayed = 0
        self._file = None
        if path is not None:
            self._load(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
            if path.stat().st_size:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        self._file.write("\n")  # end a line a crash cut short: the next record starts clean

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if record.get("answer") is not None:
                    self._remember(record["job"], _Entry(record["sha256"], record["answer"]))

    def _remember(self, job: str, entry: _Entry) -> None:
        self._entries[job] = entry
        self._entries.move_to_end(job)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def _append(self, record: dict[str, Any], *, durable: bool = False) -> None:
        """Appends a line; `durable` waits for the disk (answers), arrivals only reach the OS."""
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
            if durable:
                os.fsync(self._file.fileno())

    @staticmethod
    def job_of(request: dict[str, Any]) -> str | None:
        """The job a request names in its `user` field, or None for a request outside the protocol."""
        user = request.get("user")
        if isinstance(user, str) and user.startswith(JOB_PREFIX):
            return user.removeprefix(JOB_PREFIX)
        return None

    async def run_once(
        self,
        job: str,
        body: bytes,
        produce: Callable[[], Awaitable[dict[str, Any]]],
        *,
        received_at: float | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The answer of `job`: produced now, or the one produced before. Returns (answer, replayed).

        `received_at` is when the request reached the node (default: now), as the journal records it."""
        digest = hashlib.sha256(body).hexdigest()
        entry = self._entries.get(job)
        if entry is not None:
            if entry.body_sha256 != digest:
                raise InvalidRequest(f"Job {job} was requested before with another body.", param="user")
            self.replayed += 1
            if entry.answer is not None:
                return entry.answer, True
            assert entry.pending is not None
            return await asyncio.shield(entry.pending), True
        entry = _Entry(digest, pending=asyncio.get_running_loop().create_future())
        self._remember(job, entry)
        self._append({"job": job, "sha256": digest, "received_at": received_at or time.time()})
        try:
            answer = await produce()
        except BaseException as exc:
            # Nothing was served: forget the job so that a retry runs it.
            self._entries.pop(job, None)
            assert entry.pending is not None
            if not entry.pending.done():
                entry.pending.set_exception(exc)
                entry.pending.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        entry.answer = answer
        assert entry.pending is not None
        entry.pending.set_result(answer)
        entry.pending = None
        self.executed += 1
        self._append(
            {"job": job, "sha256": digest, "completed_at": time.time(), "answer": answer}, durable=True
        )
        return answer, False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
