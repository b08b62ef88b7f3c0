// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title MockAggregatorV3
/// @notice A Chainlink-style feed whose answers tests set, to exercise the adapter: a price feed, or an L2
/// sequencer-uptime feed (answer 0: up, 1: down; `startedAt`: since when). Not deployed outside tests.
contract MockAggregatorV3 is AggregatorV3Interface {
    uint8 public immutable decimals;
    uint80 private _round;
    int256 private _answer;
    uint256 private _startedAt;
    uint256 private _updatedAt;
    uint80 private _answeredInRound;

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    /// @notice Starts a new round, answered in itself, with `answer` at `updatedAt`.
    function setAnswer(int256 answer, uint256 updatedAt) external {
        _round++;
        (_answer, _startedAt, _updatedAt, _answeredInRound) = (answer, updatedAt, updatedAt, _round);
    }

    /// @notice Sets every field of the latest round as given.
    function setRound(uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
        external
    {
        (_round, _answer, _startedAt, _updatedAt, _answeredInRound) =
            (roundId, answer, startedAt, updatedAt, answeredInRound);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_round, _answer, _startedAt, _updatedAt, _answeredInRound);
    }
}
