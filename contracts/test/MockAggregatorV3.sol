// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title MockAggregatorV3
/// @notice A Chainlink-style feed whose answers tests set, to exercise the adapter. Not deployed outside tests.
contract MockAggregatorV3 is AggregatorV3Interface {
    uint8 public immutable decimals;
    int256 private _answer;
    uint256 private _updatedAt;
    uint80 private _round;

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    /// @notice Sets the answer and its time.
    function setAnswer(int256 answer, uint256 updatedAt) external {
        _answer = answer;
        _updatedAt = updatedAt;
        _round++;
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_round, _answer, _updatedAt, _updatedAt, _round);
    }
}
