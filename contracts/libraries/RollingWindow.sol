// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title RollingWindow
/// @notice A limit on an amount over a rolling window (Helium's mint circuit breaker) that holds exactly: the amounts
/// counted in any span of `length` seconds never add up to more than the limit.
///
/// Time is cut into buckets of `ceil(length / PAST_BUCKETS)` seconds, so that a span of `length` seconds touches at
/// most `PAST_BUCKETS + 1` consecutive buckets. An amount is admitted only when it fits under the limit together with
/// everything counted in the current bucket and the `PAST_BUCKETS` buckets before it, each counted in full (no
/// pro-rating, which is what let a two-bucket approximation admit almost twice its limit across a bucket boundary).
/// An amount is therefore counted for between `length` and `length + length / PAST_BUCKETS` seconds. When `length`
/// changes (a governance decision), the stored buckets are read at the new bucket length from then on.
/// Mirrored by `offchain/bme/economics/window.py`.
/// @dev The first slot holds what a call that does not cross a bucket boundary reads and writes; the past buckets are
/// read and shifted only when the current bucket has ended.
library RollingWindow {
    /// @notice Past buckets counted beside the current one.
    uint256 internal constant PAST_BUCKETS = 4;

    /// @dev `start` is the start of the current bucket; `current` what it counted; `total` what the current and the
    /// past buckets counted together; `past[i]` what the bucket `i + 1` buckets before the current one counted.
    struct State {
        uint48 start;
        uint104 current;
        uint104 total;
        uint128[PAST_BUCKETS] past;
    }

    /// @notice The length of a bucket for a window of `length` seconds.
    function bucketLength(uint256 length) internal pure returns (uint256) {
        return Math.ceilDiv(length, PAST_BUCKETS);
    }

    /// @notice What the window counts at `nowTs`, the current and past buckets together.
    function used(State storage s, uint256 nowTs, uint256 length) internal view returns (uint256 total) {
        uint256 start = s.start;
        uint256 bucket = bucketLength(length);
        if (nowTs < start + bucket) return s.total;
        uint256 shift = (nowTs - start) / bucket;
        if (shift > PAST_BUCKETS) return 0;
        // Buckets now older than PAST_BUCKETS: the past ones at index >= PAST_BUCKETS - shift, and the current one
        // only when shift > PAST_BUCKETS (handled above).
        total = s.total;
        for (uint256 i = PAST_BUCKETS - shift; i < PAST_BUCKETS; ++i) {
            total -= s.past[i];
        }
    }

    /// @notice What may still be counted at `nowTs` under `limit`.
    function available(State storage s, uint256 nowTs, uint256 length, uint256 limit) internal view returns (uint256) {
        uint256 total = used(s, nowTs, length);
        return total >= limit ? 0 : limit - total;
    }

    /// @notice Counts `amount` at `nowTs` when it fits under `limit`; otherwise changes nothing.
    /// @dev `limit` must be below 2^104 (the callers bound it far lower).
    /// @return ok Whether `amount` was counted.
    /// @return free What could be counted at `nowTs` before this call.
    function consume(State storage s, uint256 nowTs, uint256 length, uint256 limit, uint256 amount)
        internal
        returns (bool ok, uint256 free)
    {
        uint256 start = s.start;
        uint256 bucket = bucketLength(length);
        uint256 total;
        uint256 current;
        uint256 shift;
        if (nowTs < start + bucket) {
            (total, current) = (s.total, s.current);
        } else {
            shift = (nowTs - start) / bucket;
            total = used(s, nowTs, length);
        }
        free = total >= limit ? 0 : limit - total;
        if (amount > free) return (false, free);
        if (shift != 0) _roll(s, shift, start + shift * bucket);
        // Both fit 104 bits: total + amount <= limit < 2^104, and current <= total.
        s.current = uint104(current + amount);
        s.total = uint104(total + amount);
        return (true, free);
    }

    /// @dev Moves the buckets `shift` places into the past, drops those older than PAST_BUCKETS, and starts a new
    /// current bucket at `newStart`. The caller writes the new current and total.
    function _roll(State storage s, uint256 shift, uint256 newStart) private {
        uint128[PAST_BUCKETS] memory old = s.past;
        uint128[PAST_BUCKETS] memory next;
        if (shift <= PAST_BUCKETS) {
            next[shift - 1] = s.current;
            for (uint256 i = shift; i < PAST_BUCKETS; ++i) {
                next[i] = old[i - shift];
            }
        }
        s.past = next;
        // Safe: nowTs fits 48 bits for the lifetime of the chain's clock, and start only moves towards it.
        s.start = uint48(newStart);
    }
}
