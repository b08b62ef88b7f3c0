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
        (uint256 start, uint256 current) = (s.start, s.current);
        total = s.total;
        uint256 bucket = bucketLength(length);
        if (nowTs < start + bucket) return total;
        uint256 shift = (nowTs - start) / bucket;
        if (shift > PAST_BUCKETS) return 0;
        // The current bucket is kept (now `shift` buckets old). When no past bucket holds anything (the total is
        // the current bucket's), nothing else can expire and the past buckets need not be read.
        if (total == current) return total;
        // The past buckets now older than PAST_BUCKETS are those at index >= PAST_BUCKETS - shift.
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
        (uint256 start, uint256 current, uint256 total) = (s.start, s.current, s.total);
        uint256 bucket = bucketLength(length);
        uint256 counted = total;
        uint256 shift = 0;
        if (nowTs >= start + bucket) {
            shift = (nowTs - start) / bucket;
            counted = used(s, nowTs, length);
        }
        free = counted >= limit ? 0 : limit - counted;
        if (amount > free) return (false, free);
        if (shift != 0) {
            // Past buckets are written only when they hold something, or must now hold the old current bucket.
            if (total != current) _roll(s, shift, current);
            else if (shift <= PAST_BUCKETS && current != 0) s.past[shift - 1] = uint128(current);
            start += shift * bucket;
            current = 0;
        }
        // All fit: start is a timestamp (48 bits for the chain's lifetime); counted + amount <= limit < 2^104, and
        // the current bucket counts at most the total.
        s.start = uint48(start);
        s.current = uint104(current + amount);
        s.total = uint104(counted + amount);
        return (true, free);
    }

    /// @dev Moves the buckets `shift` places into the past, the current one (`current`) included, and drops those
    /// older than PAST_BUCKETS. The caller starts the new current bucket.
    function _roll(State storage s, uint256 shift, uint256 current) private {
        uint128[PAST_BUCKETS] memory next = [uint128(0), 0, 0, 0];
        if (shift <= PAST_BUCKETS) {
            uint128[PAST_BUCKETS] memory old = s.past;
            // Fits: the current bucket's amount is at most a limit below 2^104.
            next[shift - 1] = uint128(current);
            for (uint256 i = shift; i < PAST_BUCKETS; ++i) {
                next[i] = old[i - shift];
            }
        }
        s.past = next;
    }
}
