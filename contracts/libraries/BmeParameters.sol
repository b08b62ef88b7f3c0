// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BmeParameters
/// @notice The protocol's parameters: their layout, their defaults, and where each default comes from.
/// Defaults are named constants; the live values are changed only by governance through the timelock.
/// Mirrored by `offchain/bme/economics/params.py`.
library BmeParameters {
    /// @dev One storage slot (200 bits). The oracle's freshness limit is the oracle's own (`IPriceOracle.maxAge`).
    struct Core {
        uint16 mintSpreadBps;
        uint16 settleSpreadBps;
        uint16 crWarnBps;
        uint16 crHaltBps;
        uint16 crHysteresisBps;
        uint16 oracleMaxConfidenceBps;
        uint8 confidenceMultiplier;
        uint32 mintWindow;
        uint64 minMintCredits;
    }

    /// @dev Akash AEP-76, live parameter `mint_spread_bps`: 25 bps taken when CMP is burned for credits.
    uint16 internal constant MINT_SPREAD_BPS = 25;
    /// @dev Akash AEP-76, live parameter `settle_spread_bps`: 0 bps taken when earnings are redeemed.
    uint16 internal constant SETTLE_SPREAD_BPS = 0;
    /// @dev Akash AEP-76: the collateral ratio below which the status is Warning (0.95).
    uint16 internal constant CR_WARN_BPS = 9500;
    /// @dev Akash AEP-76: the collateral ratio below which credit minting halts (0.90).
    uint16 internal constant CR_HALT_BPS = 9000;
    /// @dev This project: a status left because of the CR is re-entered only 1 % above its threshold.
    uint16 internal constant CR_HYSTERESIS_BPS = 100;
    /// @dev Akash AEP-76: oracle deviation bound of 150 bps, used as the widest confidence band accepted.
    uint16 internal constant ORACLE_MAX_CONFIDENCE_BPS = 150;
    /// @dev Helium: burns are priced at the EMA less two confidence bands (and redemptions plus two).
    uint8 internal constant CONFIDENCE_MULTIPLIER = 2;
    /// @dev Helium: the mint circuit breaker looks back over a rolling 24-hour window.
    uint32 internal constant MINT_WINDOW = 24 hours;
    /// @dev Akash AEP-76: a burn must mint at least 10 credits (10 CRD, 6 decimals).
    uint64 internal constant MIN_MINT_CREDITS = 10e6;
    /// @dev This project: at most 10 million CMP minted by redemptions per window until governance sizes it
    /// (Helium sizes its breaker at 5x the epoch emission; the emission schedule sets it when it is deployed).
    uint128 internal constant MINT_LIMIT_PER_WINDOW = 10_000_000e18;
    /// @dev This project: the hard maximum governance may set either window's limit to, 10x the default (and far
    /// below 2^104, what a window can count). Emissions stay bounded by the schedule's immutable hard cap.
    uint128 internal constant MAX_MINT_LIMIT_PER_WINDOW = 100_000_000e18;

    /// @notice The defaults above, as one struct.
    function defaults() internal pure returns (Core memory) {
        return Core({
            mintSpreadBps: MINT_SPREAD_BPS,
            settleSpreadBps: SETTLE_SPREAD_BPS,
            crWarnBps: CR_WARN_BPS,
            crHaltBps: CR_HALT_BPS,
            crHysteresisBps: CR_HYSTERESIS_BPS,
            oracleMaxConfidenceBps: ORACLE_MAX_CONFIDENCE_BPS,
            confidenceMultiplier: CONFIDENCE_MULTIPLIER,
            mintWindow: MINT_WINDOW,
            minMintCredits: MIN_MINT_CREDITS
        });
    }

    /// @notice Whether `p` is a coherent set: spreads below 50 %, halt below warn, a usable confidence policy.
    function isValid(Core memory p) internal pure returns (bool) {
        return p.mintSpreadBps < 5000 && p.settleSpreadBps < 5000 && p.crHaltBps < p.crWarnBps
            && p.crHysteresisBps <= 2000 && p.oracleMaxConfidenceBps <= 10_000 && p.confidenceMultiplier <= 10
            && p.mintWindow > 0 && p.minMintCredits > 0;
    }
}
