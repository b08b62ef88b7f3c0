// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPriceOracle
/// @notice The one interface every price source of the protocol implements.
/// @dev Units and scale: `price` and `confidence` are US dollars per one whole CMP (1e18 of its base units),
/// as 18-decimal fixed-point numbers (WAD): a price of $0.25 is `0.25e18`. `confidence` is the half-width of the
/// source's uncertainty band around `price`, in the same units (Pyth's `conf`; a fixed band for feeds without one).
/// `updatedAt` is the unix time, in seconds, at which the source last observed the price.
/// Freshness is the source's property: `maxAge` says how long a reading stays usable (30 s for a pushed price as
/// Akash's oracle; a Chainlink feed's heartbeat, minutes to hours), and must not change once the source is in use.
/// The consumer (the BME core) rejects a reading whose `updatedAt` is zero, in the future or more than `maxAge`
/// seconds old, a zero price and a confidence too wide. Adapters revert when they cannot produce a trustworthy
/// reading at all (a sequencer down, an answer outside its bounds); the BME core passes their reason on.
interface IPriceOracle {
    /// @notice The latest price reading.
    /// @return price US dollars per whole CMP, 18 decimals.
    /// @return updatedAt Unix time of the observation, in seconds.
    /// @return confidence Half-width of the uncertainty band, same units as `price`.
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence);

    /// @notice Seconds after its `updatedAt` during which a reading may price a burn or a redemption; positive.
    function maxAge() external view returns (uint256);
}
