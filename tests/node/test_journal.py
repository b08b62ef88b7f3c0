"""The node's job journal: a paid job runs the model once, however often (and however concurrently) it is
asked, across restarts of the node when the journal has a file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bme.node.errors import InvalidRequest
from bme.node.journal import JobJournal

pytestmark = pytest.mark.pure


def _producer(calls: list[int], delay: float = 0.0) -> Any:
    async def produce() -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(delay)
        return {"choices": [{"message": {"content": f"answer {len(calls)}"}}]}

    return produce


def test_a_job_asked_twice_runs_once() -> None:
    async def scenario() -> None:
        journal, calls = JobJournal(), []
        first, replayed1 = await journal.run_once("0x01", b"body", _producer(calls))
        second, replayed2 = await journal.run_once("0x01", b"body", _producer(calls))
        assert calls == [1] and first == second
        assert (replayed1, replayed2) == (False, True)
        assert (journal.executed, journal.replayed) == (1, 1)

    asyncio.run(scenario())


def test_concurrent_asks_share_one_run() -> None:
    async def scenario() -> None:
        journal, calls = JobJournal(), []
        results = await asyncio.gather(
            *(journal.run_once("0x02", b"body", _producer(calls, delay=0.05)) for _ in range(5))
        )
        assert calls == [1]
        assert len({json.dumps(answer) for answer, _ in results}) == 1

    asyncio.run(scenario())


def test_the_same_job_with_another_body_is_refused() -> None:
    async def scenario() -> None:
        journal = JobJournal()
        await journal.run_once("0x03", b"body", _producer([]))
        with pytest.raises(InvalidRequest, match="another body"):
            await journal.run_once("0x03", b"other", _producer([]))

    asyncio.run(scenario())


def test_a_failed_run_is_forgotten_so_a_retry_runs() -> None:
    async def failing() -> dict[str, Any]:
        raise RuntimeError("model crashed")

    async def scenario() -> None:
        journal, calls = JobJournal(), []
        with pytest.raises(RuntimeError):
            await journal.run_once("0x04", b"body", failing)
        await journal.run_once("0x04", b"body", _producer(calls))
        assert calls == [1] and journal.executed == 1

    asyncio.run(scenario())


def test_answers_survive_a_restart_and_arrivals_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"

    async def first_life() -> dict[str, Any]:
        journal = JobJournal(path)
        answer, _ = await journal.run_once("0x05", b"body", _producer([]), received_at=123.5)
        journal.close()
        return answer

    async def second_life(calls: list[int]) -> tuple[dict[str, Any], bool]:
        journal = JobJournal(path)
        try:
            return await journal.run_once("0x05", b"body", _producer(calls))
        finally:
            journal.close()

    answer = asyncio.run(first_life())
    path.write_text(path.read_text() + '{"job": "0x06", "sha')  # a line cut short by a crash
    calls: list[int] = []
    again, replayed = asyncio.run(second_life(calls))
    assert calls == [] and replayed and again == answer
    assert path.read_text().endswith('"sha\n')  # the cut line was ended: later records start clean
    records = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    assert records[0] == {"job": "0x05", "sha256": records[0]["sha256"], "received_at": 123.5}
    assert JobJournal.job_of({"user": "bme-job:0xabc"}) == "0xabc"
    assert JobJournal.job_of({"user": "someone"}) is None
