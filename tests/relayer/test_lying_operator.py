"""An operator that lies about its work: its endpoint answers every job at once with a completion whose usage
no model could have produced (more tokens than the escrow's uint32 holds, or a negative count). Such an answer
once reached the settlement batch and stopped the relayer; now each one fails its call, the job goes to an
honest operator, every job settles once with that operator's counts, and the relayer stays up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bme.stack import LocalStack, StackConfig

from .helpers import (
    FAST_RELAYER,
    FakeCompletions,
    JobFactory,
    RelayerDb,
    operators_view,
    settled_events,
    wait_until,
)

#: What the lying endpoint reports, in turn: past the escrow's uint32, negative, and far past any reservation.
LIES = [2**32 + 5, -7, 4_000_000_000]


@pytest.fixture
def liar() -> Iterator[FakeCompletions]:
    """Answers any chat completion at once, claiming `LIES[i]` completion tokens for its i-th answer."""
    endpoint = FakeCompletions(lambda i: ("Hi", 31, LIES[i % len(LIES)]))
    yield endpoint
    endpoint.close()


def test_impossible_usage_fails_the_call_and_the_job_settles_with_an_honest_operator(
    tmp_path: Path, liar: FakeCompletions
) -> None:
    with LocalStack(StackConfig(work_dir=tmp_path, operators=2, users=2)) as st:
        st.start_node(0)
        st.register_operator(1, liar.url)
        relayer = st.start_relayer(extra_env=FAST_RELAYER)
        factory = JobFactory(st, relayer.url)
        factory.fund()
        db = RelayerDb(f"sqlite:///{tmp_path / 'relayer.db'}")
        honest, lying = st.operators[0].address, st.operators[1].address
        wait_until("the relayer to know both operators", lambda: lying in operators_view(relayer), 30)

        jobs = factory.make(12)
        factory.reveal_and_pay(jobs)
        wait_until(
            "every job settled",
            lambda: set(db.states(j.job_hex for j in jobs).values()) == {"SETTLED"},
            90,
        )

        assert liar.calls >= 1, "the lying operator was never called"
        assert httpx.get(relayer.url + "/readyz", timeout=10).status_code == 200
        assert relayer.popen.poll() is None  # the relayer process is still running
        events = [e for e in settled_events(st) if e["job_id"] in {j.job_hex for j in jobs}]
        assert sorted(e["job_id"] for e in events) == sorted(j.job_hex for j in jobs)  # each exactly once
        assert {e["operator"] for e in events} == {honest}
        assert all(0 < e["outputTokens"] <= factory.max_tokens for e in events)
        view = operators_view(relayer)[lying]
        assert view["succeeded"] == 0 and view["answered_errors"] >= 1
        assert "usage.completion_tokens" in (view["last_error"] or "")
        assert db.attempts_by_operator()[lying].keys() == {"error"}
        db.close()
