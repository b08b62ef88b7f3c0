// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPriceOracle} from "../interfaces/IPriceOracle.sol";
import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title ChainlinkPriceOracle
/// @notice Adapts a Chainlink AggregatorV3 feed (CMP/USD) to `IPriceOracle`, with the checks Chainlink's documentation
/// asks of a consumer: the answer must lie within `[minAnswer, maxAnswer]` (set them inside the aggregator's own
/// limits, so that an answer clamped there is refused rather than used), come from a complete round, and be no older
/// than the feed's `heartbeat` (also the reading's `maxAge`); on an L2, while the sequencer-uptime feed reports the
/// sequencer down, and for `gracePeriod` seconds after it is back up, no price is given. The answer is scaled from
/// the feed's decimals to 18. Chainlink publishes no confidence band, so the adapter reports a fixed one:
/// `confidenceBps` of the price (set it to the feed's deviation threshold). Every setting is immutable.
contract ChainlinkPriceOracle is IPriceOracle {
    /// @notice What the adapter is built with.
    /// @param feed The AggregatorV3 feed of CMP in US dollars.
    /// @param heartbeat The feed's heartbeat in seconds: an answer older than this is stale.
    /// @param confidenceBps The confidence band to report, in basis points of the price (below 100 %).
    /// @param minAnswer The lowest answer accepted, at the feed's decimals; positive.
    /// @param maxAnswer The highest answer accepted, at the feed's decimals; at least `minAnswer`.
    /// @param sequencerUptimeFeed Chainlink's L2 sequencer-uptime feed (answer 0: up, 1: down); the zero address
    /// on a chain without a sequencer.
    /// @param gracePeriod Seconds after the sequencer is back up during which no price is given (Chainlink's
    /// example: 3600); ignored without a sequencer feed.
    struct Config {
        AggregatorV3Interface feed;
        uint256 heartbeat;
        uint256 confidenceBps;
        int256 minAnswer;
        int256 maxAnswer;
        AggregatorV3Interface sequencerUptimeFeed;
        uint256 gracePeriod;
    }

    /// @notice The price feed.
    AggregatorV3Interface public immutable feed;
    /// @notice The feed's heartbeat, in seconds: the most an answer may age.
    uint256 public immutable heartbeat;
    /// @notice The confidence band reported, in basis points of the price.
    uint256 public immutable confidenceBps;
    /// @notice The lowest answer accepted, at the feed's decimals.
    int256 public immutable minAnswer;
    /// @notice The highest answer accepted, at the feed's decimals.
    int256 public immutable maxAnswer;
    /// @notice The L2 sequencer-uptime feed, or the zero address.
    AggregatorV3Interface public immutable sequencerUptimeFeed;
    /// @notice Seconds after the sequencer comes back up during which no price is given.
    uint256 public immutable gracePeriod;
    uint256 private immutable _scaleUp;
    uint256 private immutable _scaleDown;

    /// @notice The feed answered `answer`, which is not a positive price.
    error ChainlinkPriceOracleNonPositive(int256 answer);
    /// @notice The feed's answer from `updatedAt` is older than the heartbeat, `maxStaleness` seconds, or has no time
    /// or a future one.
    error ChainlinkPriceOracleStale(uint256 updatedAt, uint256 maxStaleness);
    /// @notice The feed answered `answer`, outside the accepted range `[minAnswer, maxAnswer]`.
    error ChainlinkPriceOracleOutOfBounds(int256 answer, int256 minAnswer, int256 maxAnswer);
    /// @notice The feed's latest round `roundId` was answered in an earlier round, `answeredInRound`.
    error ChainlinkPriceOracleIncompleteRound(uint80 roundId, uint80 answeredInRound);
    /// @notice The L2 sequencer is down (or its uptime feed has no valid round): prices cannot be trusted.
    error ChainlinkPriceOracleSequencerDown();
    /// @notice The L2 sequencer came back up at `upSince`; prices are refused until `upSince + gracePeriod`.
    error ChainlinkPriceOracleGracePeriod(uint256 upSince, uint256 gracePeriod);
    /// @notice The constructor was given a zero feed or heartbeat, a band of 100 % or more, or an answer range
    /// that is empty or not positive.
    error ChainlinkPriceOracleInvalidConfig();

    /// @param config The feed and the checks' settings (see `Config`).
    constructor(Config memory config) {
        if (
            address(config.feed) == address(0) || config.heartbeat == 0 || config.confidenceBps >= 10_000
                || config.minAnswer <= 0 || config.maxAnswer < config.minAnswer
        ) {
            revert ChainlinkPriceOracleInvalidConfig();
        }
        feed = config.feed;
        heartbeat = config.heartbeat;
        confidenceBps = config.confidenceBps;
        minAnswer = config.minAnswer;
        maxAnswer = config.maxAnswer;
        sequencerUptimeFeed = config.sequencerUptimeFeed;
        gracePeriod = config.gracePeriod;
        uint8 d = config.feed.decimals();
        _scaleUp = d < 18 ? 10 ** (18 - d) : 1;
        _scaleDown = d > 18 ? 10 ** (d - 18) : 1;
    }

    /// @inheritdoc IPriceOracle
    function maxAge() external view returns (uint256) {
        return heartbeat;
    }

    /// @inheritdoc IPriceOracle
    /// @dev Reverts while the L2 sequencer is down or within its grace period, and when the answer is not positive,
    /// outside its bounds, from an incomplete round, or older than the heartbeat.
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence) {
        if (address(sequencerUptimeFeed) != address(0)) _checkSequencer();
        (uint80 roundId, int256 answer,, uint256 updatedAt_, uint80 answeredInRound) = feed.latestRoundData();
        if (answer <= 0) revert ChainlinkPriceOracleNonPositive(answer);
        if (answer < minAnswer || answer > maxAnswer) {
            revert ChainlinkPriceOracleOutOfBounds(answer, minAnswer, maxAnswer);
        }
        if (answeredInRound < roundId) revert ChainlinkPriceOracleIncompleteRound(roundId, answeredInRound);
        updatedAt = updatedAt_;
        if (updatedAt == 0 || updatedAt > block.timestamp || block.timestamp - updatedAt > heartbeat) {
            revert ChainlinkPriceOracleStale(updatedAt, heartbeat);
        }
        price = uint256(answer) * _scaleUp / _scaleDown;
        confidence = price * confidenceBps / 10_000;
    }

    /// @dev Chainlink's L2 sequencer check: the uptime feed answers 0 when the sequencer is up, since `startedAt`.
    function _checkSequencer() private view {
        (, int256 answer, uint256 startedAt,,) = sequencerUptimeFeed.latestRoundData();
        // A `startedAt` of zero is an uninitialised round (Arbitrum's feed before its first update): not trusted.
        if (answer != 0 || startedAt == 0) revert ChainlinkPriceOracleSequencerDown();
        if (startedAt > block.timestamp || block.timestamp - startedAt <= gracePeriod) {
            revert ChainlinkPriceOracleGracePeriod(startedAt, gracePeriod);
        }
    }
}
