// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title EmissionMath
/// @notice The emission schedule's arithmetic, with no storage. Each function names its rounding direction; every
/// rounding favours the protocol: emissions and rewards round down, the bound checked against the hard cap rounds
/// up. Mirrored, function for function, by `offchain/bme/economics/emission.py`.
/// @dev Units: tokens are CMP base units (18 decimals); ratios are WAD (1e18 = 1); rates are basis points.
library EmissionMath {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant BPS = 10_000;
    uint256 private constant WAD_PER_BPS = WAD / BPS;

    /// @notice `x` to the power `n`, both WAD, by squaring, each product rounded down: never above the exact power.
    /// @dev `x` must be at most WAD, so no product exceeds 1e36.
    function rpowDown(uint256 x, uint256 n) internal pure returns (uint256 z) {
        z = WAD;
        while (n != 0) {
            // slither-disable-next-line divide-before-multiply -- by design: each product rounds down, never above the exact power
            if (n & 1 != 0) z = z * x / WAD;
            x = x * x / WAD;
            n >>= 1;
        }
    }

    /// @notice `amount` after `periods` decays of `decayBps` each, rounded down.
    function decayedDown(uint256 amount, uint256 decayBps, uint256 periods) internal pure returns (uint256) {
        if (decayBps == 0 || periods == 0) return amount;
        return amount * rpowDown((BPS - decayBps) * WAD_PER_BPS, periods) / WAD;
    }

    /// @notice An upper bound on all a segment emits, rounded up: `amount` per epoch for `epochs` epochs (zero:
    /// forever), decaying by `decayBps` every `decayPeriod` epochs. A geometric series of periods of
    /// `decayPeriod * amount` with ratio `1 - decayBps / BPS` sums to at most `decayPeriod * amount * BPS / decayBps`.
    /// `type(uint256).max` for an endless segment that does not decay.
    function segmentBoundUp(uint256 amount, uint256 epochs, uint256 decayBps, uint256 decayPeriod)
        internal
        pure
        returns (uint256)
    {
        uint256 finite = epochs == 0 ? type(uint256).max : amount * epochs;
        if (decayBps == 0) return amount == 0 ? 0 : finite;
        uint256 geometric = (decayPeriod * amount * BPS + decayBps - 1) / decayBps;
        return geometric < finite ? geometric : finite;
    }

    /// @notice An operator's share of an epoch's `emission` for reward weight `weight` of the epoch's total
    /// `totalWeight`, rounded down, so the shares of all operators never exceed the emission.
    function rewardDown(uint256 emission, uint256 weight, uint256 totalWeight) internal pure returns (uint256) {
        unchecked {
            // Cannot overflow: emission < 2^96 (a segment's amount) and a weight is a stake (< 2^128, the
            // registry's stake field), so the product is below 2^224. A zero totalWeight still reverts.
            return emission * weight / totalWeight;
        }
    }
}
