// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPriceOracle
/// @notice The one interface every price source of the protocol implements.
/// @dev Units and scale: `price` and `confidence` are US dollars per one whole CMP (1e18 of its base units),
/// as 18-decimal fixed-point numbers (WAD): a price of $0.25 is `0.25e18`. `confidence` is the half-width of the
/// source's uncertainty band around `price`, in the same units (Pyth's `conf`; a fixed band for feeds without one).
/// `updatedAt` is the unix time, in seconds, at which the source last observed the price.
/// Staleness rule: an adapter never judges freshness against a policy of its own beyond its hard bound; the
/// consumer (the BME core) rejects a price whose `updatedAt` is older than its `oracleMaxAge` parameter, that is
/// zero, or whose confidence is too wide. Adapters revert only when they cannot produce a reading at all.
interface IPriceOracle {
    /// @notice The latest price reading.
    /// @return price US dollars per whole CMP, 18 decimals.
    /// @return updatedAt Unix time of the observation, in seconds.
    /// @return confidence Half-width of the uncertainty band, same units as `price`.
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence);
}
