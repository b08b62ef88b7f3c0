// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title RollingWindow
/// @notice A rolling-window limit on an amount (Helium's mint circuit breaker), approximated with two fixed buckets:
/// the usage counted at time `t` is the current bucket plus the previous bucket weighted by the share of the window
/// that still overlaps it, rounded up. Mirrored by `offchain/bme/economics/window.py`.
library RollingWindow {
    /// @dev One storage slot. `start` is the start of the current bucket.
    struct State {
        uint48 start;
        uint104 previous;
        uint104 current;
    }

    /// @notice Usage at time `nowTs` for a window of `length` seconds, and the state rolled forward to `nowTs`.
    function rolled(State memory s, uint256 nowTs, uint256 length) internal pure returns (State memory r, uint256 used) {
        r = s;
        if (nowTs >= uint256(r.start) + length) {
            uint256 buckets = (nowTs - r.start) / length;
            r.previous = buckets == 1 ? r.current : 0;
            r.current = 0;
            // Safe: nowTs fits 48 bits for the lifetime of the chain's clock, and start only moves towards it.
            r.start = uint48(uint256(r.start) + buckets * length);
        }
        uint256 overlap = length - (nowTs - r.start);
        used = r.current + Math.mulDiv(r.previous, overlap, length, Math.Rounding.Ceil);
    }
}
