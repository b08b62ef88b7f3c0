// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPriceOracle} from "../interfaces/IPriceOracle.sol";
import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title ChainlinkPriceOracle
/// @notice Adapts a Chainlink AggregatorV3 feed (CMP/USD) to `IPriceOracle`: the answer must be positive and no older
/// than `maxStaleness` (the feed's heartbeat), and is scaled from the feed's decimals to 18. Chainlink publishes no
/// confidence band, so the adapter reports a fixed one: `confidenceBps` of the price (set it to the feed's
/// deviation threshold).
contract ChainlinkPriceOracle is IPriceOracle {
    AggregatorV3Interface public immutable feed;
    uint256 public immutable maxStaleness;
    uint256 public immutable confidenceBps;
    uint256 private immutable _scaleUp;
    uint256 private immutable _scaleDown;

    /// @notice The feed answered `answer`, which is not a positive price.
    error ChainlinkPriceOracleNonPositive(int256 answer);
    /// @notice The feed's answer from `updatedAt` is older than `maxStaleness` seconds.
    error ChainlinkPriceOracleStale(uint256 updatedAt, uint256 maxStaleness);
    /// @notice The constructor was given a zero feed or staleness bound, or a band of 100 % or more.
    error ChainlinkPriceOracleInvalidConfig();

    /// @param feed_ The AggregatorV3 feed of CMP in US dollars.
    /// @param maxStaleness_ Seconds after which an answer is refused (the feed's heartbeat plus a margin).
    /// @param confidenceBps_ The confidence band to report, in basis points of the price.
    constructor(AggregatorV3Interface feed_, uint256 maxStaleness_, uint256 confidenceBps_) {
        if (address(feed_) == address(0) || maxStaleness_ == 0 || confidenceBps_ >= 10_000) {
            revert ChainlinkPriceOracleInvalidConfig();
        }
        feed = feed_;
        maxStaleness = maxStaleness_;
        confidenceBps = confidenceBps_;
        uint8 d = feed_.decimals();
        _scaleUp = d < 18 ? 10 ** (18 - d) : 1;
        _scaleDown = d > 18 ? 10 ** (d - 18) : 1;
    }

    /// @inheritdoc IPriceOracle
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence) {
        int256 answer;
        (, answer,, updatedAt,) = feed.latestRoundData();
        if (answer <= 0) revert ChainlinkPriceOracleNonPositive(answer);
        if (updatedAt == 0 || updatedAt > block.timestamp || block.timestamp - updatedAt > maxStaleness) {
            revert ChainlinkPriceOracleStale(updatedAt, maxStaleness);
        }
        price = uint256(answer) * _scaleUp / _scaleDown;
        confidence = price * confidenceBps / 10_000;
    }
}
