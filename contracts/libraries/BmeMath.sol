// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title BmeMath
/// @notice The protocol's economic arithmetic, with no storage. Each function names its rounding direction;
/// every rounding favours the protocol, so no sequence of calls creates CRD or CMP out of rounding.
/// Mirrored, function for function, by `offchain/bme/economics/math.py`.
/// @dev Units: tokens are CMP base units (18 decimals); prices are dollars per whole CMP as WAD (18 decimals);
/// credits are CRD base units (6 decimals); rates are basis points (1e4 = 100 %).
library BmeMath {
    uint256 internal constant BPS = 10_000;
    /// @dev tokens * price / 1e18 gives dollars in WAD; / 1e12 gives CRD base units: 1e30 in all.
    uint256 internal constant TOKEN_PRICE_TO_CREDITS = 1e30;
    uint256 private constant TOKEN_PRICE_TO_CREDITS_PER_BPS = TOKEN_PRICE_TO_CREDITS / BPS;

    /// @notice Credits received for burning `tokens` at `price`, less `spreadBps`, rounded down.
    function toCreditsDown(uint256 tokens, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return Math.mulDiv(tokens, price * (BPS - spreadBps), TOKEN_PRICE_TO_CREDITS * BPS);
    }

    /// @notice Tokens paid out for redeeming `credits` at `price`, less `spreadBps`, rounded down.
    function toTokensDown(uint256 credits, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return Math.mulDiv(credits * (BPS - spreadBps), TOKEN_PRICE_TO_CREDITS, price * BPS);
    }

    /// @notice Tokens that must be burned to receive at least `credits` at `price` less `spreadBps`, rounded up.
    /// @dev Used by quotes; `toCreditsDown(toTokensUp(c, p, s), p, s) >= c` holds for every input.
    function toTokensUp(uint256 credits, uint256 price, uint256 spreadBps) internal pure returns (uint256) {
        return Math.mulDiv(credits, TOKEN_PRICE_TO_CREDITS * BPS, price * (BPS - spreadBps), Math.Rounding.Ceil);
    }

    /// @notice The price at which a burn is credited: the oracle price less `multiplier` confidence bands,
    /// so an uncertain oracle gives burners fewer credits. Zero when the band swallows the price.
    function burnPriceDown(uint256 price, uint256 confidence, uint256 multiplier) internal pure returns (uint256) {
        uint256 band = confidence * multiplier;
        return band >= price ? 0 : price - band;
    }

    /// @notice The price at which a redemption pays out: the oracle price plus `multiplier` confidence bands,
    /// so an uncertain oracle gives redeemers fewer tokens.
    function redeemPriceUp(uint256 price, uint256 confidence, uint256 multiplier) internal pure returns (uint256) {
        return price + confidence * multiplier;
    }

    /// @notice The cost of a job in credits, rounded up: prices are credits per million tokens.
    function jobCostUp(uint256 inputTokens, uint256 outputTokens, uint256 inputPricePerMillion, uint256 outputPricePerMillion)
        internal
        pure
        returns (uint256)
    {
        return Math.ceilDiv(inputTokens * inputPricePerMillion + outputTokens * outputPricePerMillion, 1e6);
    }

    /// @notice The collateral ratio in basis points, rounded down: the dollar value of the remint credits and the
    /// seed buffer over the outstanding credits. `type(uint256).max` when nothing is outstanding.
    function collateralRatioBpsDown(uint256 backingTokens, uint256 price, uint256 outstandingCredits)
        internal
        pure
        returns (uint256)
    {
        if (outstandingCredits == 0) return type(uint256).max;
        // backing * price / 1e18 / 1e12 * 1e4 / outstanding
        return Math.mulDiv(backingTokens, price, outstandingCredits * TOKEN_PRICE_TO_CREDITS_PER_BPS);
    }

    /// @notice Whether `confidence` is within `maxConfidenceBps` of `price`.
    function confidenceWithin(uint256 price, uint256 confidence, uint256 maxConfidenceBps) internal pure returns (bool) {
        return confidence * BPS <= price * maxConfidenceBps;
    }
}
