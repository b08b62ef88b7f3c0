"""Stop strings in a completion's text: where one starts, and what must be held back while streaming.

Pure text functions, apart from the model runtime, so the generation loop and its tests share them.
"""

from __future__ import annotations

from collections.abc import Sequence


def stop_holdback(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could start a stop string, so must not be sent yet."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def longest_stop(stops: Sequence[str]) -> int:
    return max((len(s) for s in stops), default=0)


def first_stop(text: str, stops: Sequence[str], *, search_from: int) -> int | None:
    """Where the earliest stop string starts in `text`, looking only from `search_from` on."""
    found = [i for i in (text.find(s, search_from) for s in stops if s) if i >= 0]
    return min(found) if found else None
