"""The rule a job's usage is settled by, and the bound for models the relayer has no tokenizer for: each field
at min(reported, counted, cap), a report beyond the count and its tolerance disputed; the bound never below
what a byte-level tokenizer can produce. And the deadline rules: no dispatch, and no answer handed out, when a
settlement could no longer make the job's deadline."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bme.relayer.api import answer_withheld
from bme.relayer.dispatch import Dispatcher
from bme.relayer.usage import (
    ANSWER_SLACK_TOKENS,
    TEMPLATE_TOKENS,
    ByteBound,
    Counted,
    UsageCounting,
    settle_usage,
    tolerance,
)

pytestmark = pytest.mark.pure


def test_the_tolerance_is_two_tokens_and_two_percent_rounded_up() -> None:
    assert [tolerance(n) for n in (0, 1, 16, 50, 51, 100, 1000)] == [2, 3, 3, 3, 4, 4, 22]


def test_an_honest_report_is_settled_as_reported() -> None:
    usage = settle_usage((31, 16), Counted(31, 16, exact=True), max_output_tokens=64)
    assert (usage.input_tokens, usage.output_tokens, usage.disputed, usage.excess) == (31, 16, (), 0)
    assert usage.detail() == "31+16 tokens"


def test_an_over_report_is_settled_at_the_count_and_disputed() -> None:
    """The attack: 4,000 completion tokens claimed for a 16-token answer (well inside the uint32 bound)."""
    usage = settle_usage((31, 4_000), Counted(31, 16, exact=True), max_output_tokens=4_096)
    assert (usage.input_tokens, usage.output_tokens) == (31, 16)
    assert usage.disputed == ("output",) and usage.excess == 3_984
    assert "usage disputed (output over-reported)" in usage.detail()
    assert "reported 31+4000" in usage.detail() and "counted 31+16" in usage.detail()


def test_an_over_reported_prompt_is_disputed_too() -> None:
    usage = settle_usage((900, 16), Counted(31, 16, exact=True), max_output_tokens=64)
    assert (usage.input_tokens, usage.output_tokens, usage.disputed) == (31, 16, ("input",))


def test_the_request_cap_bounds_the_answer_whatever_the_count() -> None:
    usage = settle_usage((31, 70), Counted(31, 70, exact=True), max_output_tokens=64)
    assert usage.output_tokens == 64
    assert usage.disputed == ("output",)  # 70 > 64 + 3: more than the request allowed
    assert settle_usage((31, 64), Counted(31, 66, exact=True), 64).disputed == ()


def test_a_difference_within_the_tolerance_is_settled_at_the_least_without_a_dispute() -> None:
    """A re-tokenized answer may count a token or two fewer than the tokens sampled."""
    usage = settle_usage((31, 102), Counted(31, 100, exact=True), max_output_tokens=128)
    assert (usage.output_tokens, usage.disputed) == (100, ())
    assert "reported 31+102" in usage.detail() and "disputed" not in usage.detail()
    assert settle_usage((31, 104), Counted(31, 100, exact=True), 128).disputed == ()  # 100 + 2 + 2 %
    assert settle_usage((31, 105), Counted(31, 100, exact=True), 128).disputed == ("output",)


def test_an_under_report_is_settled_as_reported_and_not_disputed() -> None:
    usage = settle_usage((10, 1), Counted(31, 16, exact=True), max_output_tokens=64)
    assert (usage.input_tokens, usage.output_tokens, usage.disputed) == (10, 1, ())


@given(
    reported=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    counted=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    cap=st.integers(1, 10**6),
)
def test_settled_is_never_above_the_report_the_count_or_the_cap(
    reported: tuple[int, int], counted: tuple[int, int], cap: int
) -> None:
    usage = settle_usage(reported, Counted(*counted, exact=True), max_output_tokens=cap)
    assert usage.input_tokens == min(reported[0], counted[0])
    assert usage.output_tokens == min(reported[1], counted[1], cap)
    bounds = (counted[0], min(counted[1], cap))
    for name, report, bound in zip(("input", "output"), reported, bounds, strict=True):
        assert (name in usage.disputed) == (report > bound + tolerance(bound))


@given(st.text(max_size=200), st.text(max_size=200))
def test_the_byte_bound_counts_every_byte_and_the_templates_allowance(system: str, user: str) -> None:
    bound = ByteBound()
    messages = [("system", system), ("user", user)]
    assert bound.prompt_tokens(messages) >= TEMPLATE_TOKENS + len(system.encode()) + len(user.encode())
    assert bound.text_tokens(user) == len(user.encode()) + ANSWER_SLACK_TOKENS


def test_a_model_without_a_tokenizer_is_counted_by_the_bound() -> None:
    counting = UsageCounting(embedded=False)
    request = json.dumps(
        {
            "model": "gpt-like",
            "messages": [{"role": "user", "content": "héllo"}],
            "max_tokens": 8,
            "nonce": "x" * 8,
        }
    )
    counted, max_tokens = counting.count(request, "Hi there")
    assert (counted.exact, max_tokens) == (False, 8)
    assert counted.input_tokens == TEMPLATE_TOKENS + 8 + len(b"user") + len("héllo".encode())
    assert counted.output_tokens == len(b"Hi there") + ANSWER_SLACK_TOKENS


def _dispatcher(chain_now: float, margin: float = 30.0) -> Dispatcher:
    return Dispatcher(
        None,  # type: ignore[arg-type]  # the deadline rule reads neither the store nor the key
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        settle_margin_s=margin,
        chain_clock=lambda: chain_now,
    )


def test_a_job_whose_deadline_leaves_no_time_to_settle_is_refused() -> None:
    dispatcher = _dispatcher(chain_now=1_000)
    assert dispatcher.too_late(SimpleNamespace(deadline=1_030)) is None
    refused = dispatcher.too_late(SimpleNamespace(deadline=1_010))
    assert refused is not None and "not dispatched" in refused and "10 s away" in refused
    assert "passed" in (dispatcher.too_late(SimpleNamespace(deadline=900)) or "")


@pytest.mark.parametrize(
    ("state", "deadline", "shown"),
    [
        ("SETTLED", 900, True),  # settled: paid for, whatever the time
        ("COMPLETED", 2_000, True),  # its settlement can still make the deadline
        ("SETTLING", 2_000, True),
        ("COMPLETED", 1_020, False),  # too near the deadline: only if it settles
        ("SETTLING", 1_020, False),
        ("EXPIRED", 2_000, False),  # ended unsettled: refunded
        ("FAILED", 2_000, False),
    ],
)
def test_an_answer_is_handed_out_only_when_it_is_or_can_still_be_paid_for(
    state: str, deadline: int, shown: bool
) -> None:
    assert (answer_withheld(state, deadline, chain_now=1_000, settle_margin_s=30) is None) == shown
