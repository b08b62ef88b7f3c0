// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title AggregatorV3Interface
/// @notice Chainlink's price-feed interface, as published by Chainlink (only the parts the adapter reads).
interface AggregatorV3Interface {
    /// @notice The number of decimals in `answer`.
    function decimals() external view returns (uint8);

    /// @notice The latest round: `answer` is the price, `updatedAt` the time it was last updated.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
