// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IPriceOracle} from "../interfaces/IPriceOracle.sol";

/// @title ManualPriceOracle
/// @notice A price source fed by hand, for devnets, scenario replays and a feeder's own pusher: accounts holding
/// `FEEDER_ROLE` (granted by governance) push prices; each push's timestamp must be later than the last one and not
/// in the future, and its price may differ from the last one by at most `maxStepBps` (the first price is free), so
/// a feeder, honest or not, moves the price only in bounded steps. With a `stepPeriod`, the bound is also a rate: a
/// push observed `elapsed` seconds after the last one may move the price at most `maxStepBps * elapsed /
/// stepPeriod` (a full step once a period has passed), so however many pushes it sends, a feeder moves the price
/// by about `maxStepBps` per period of time. A reading may price a burn or a redemption for `maxAge` seconds. Every
/// bound is fixed at construction.
contract ManualPriceOracle is IPriceOracle, AccessControl {
    /// @notice Accounts allowed to push prices.
    bytes32 public constant FEEDER_ROLE = keccak256("FEEDER_ROLE");
    /// @notice Akash AEP-76: an oracle price older than 30 seconds is stale.
    uint256 public constant DEFAULT_MAX_AGE = 30;
    /// @notice This project: one push moves the price by at most 10 %.
    uint256 public constant DEFAULT_MAX_STEP_BPS = 1000;
    /// @notice The widest step bound a deployment may set: a push may then move the price a hundredfold.
    uint256 public constant MAX_STEP_BPS = 1_000_000;

    /// @inheritdoc IPriceOracle
    uint256 public immutable maxAge;
    /// @notice The most one push may move the price from the last one, in basis points of the last price; zero
    /// for no bound (scenario replays and tests of the BME core under arbitrary prices only).
    uint256 public immutable maxStepBps;
    /// @notice Seconds of observation time a full step needs: a push sooner after the last one may move the price
    /// proportionally less. Zero: every push may make a full step.
    uint256 public immutable stepPeriod;

    /// @dev One slot.
    struct Reading {
        uint128 price;
        uint88 confidence;
        uint40 updatedAt;
    }

    Reading private _reading;

    /// @notice A price was pushed.
    event PricePushed(uint256 price, uint256 confidence, uint256 updatedAt);

    /// @notice A pushed price must be positive.
    error ManualPriceOracleZeroPrice();
    /// @notice A push's timestamp `updatedAt` must be after the last one, `last`, and not after the block's time.
    error ManualPriceOracleBadTimestamp(uint256 updatedAt, uint256 last);
    /// @notice A value does not fit its field.
    error ManualPriceOracleOverflow();
    /// @notice The pushed `price` is more than `allowedBps` basis points away from the last price, `lastPrice`
    /// (`allowedBps`: the step bound, scaled down by the time since the last push when there is a step period).
    error ManualPriceOracleStepTooLarge(uint256 price, uint256 lastPrice, uint256 allowedBps);
    /// @notice The constructor was given a zero admin, feeder or maximum age, a maximum age or step period past
    /// 2^32 - 1 s, or a step bound past `MAX_STEP_BPS`.
    error ManualPriceOracleInvalidConfig();

    /// @param admin Governance: grants and revokes `FEEDER_ROLE`.
    /// @param feeder The first account allowed to push prices.
    /// @param maxAge_ Seconds a reading stays usable (`DEFAULT_MAX_AGE`: 30); positive.
    /// @param maxStepBps_ The most one push may move the price, in basis points (`DEFAULT_MAX_STEP_BPS`: 1000);
    /// zero for no bound; at most `MAX_STEP_BPS`.
    /// @param stepPeriod_ Seconds of observation time a full step needs (zero: none); at most 2^32 - 1.
    constructor(address admin, address feeder, uint256 maxAge_, uint256 maxStepBps_, uint256 stepPeriod_) {
        if (
            admin == address(0) || feeder == address(0) || maxAge_ == 0 || maxAge_ > type(uint32).max
                || maxStepBps_ > MAX_STEP_BPS || stepPeriod_ > type(uint32).max
        ) {
            revert ManualPriceOracleInvalidConfig();
        }
        maxAge = maxAge_;
        maxStepBps = maxStepBps_;
        stepPeriod = stepPeriod_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(FEEDER_ROLE, feeder);
    }

    /// @notice Records a price observed at `updatedAt`.
    /// @param price Dollars per whole CMP, 18 decimals; positive, and within the step bound of the last price.
    /// @param confidence Half-width of the uncertainty band, same units.
    /// @param updatedAt Unix time of the observation: after the last push, not in the future.
    function pushPrice(uint256 price, uint256 confidence, uint256 updatedAt) external onlyRole(FEEDER_ROLE) {
        if (price == 0) revert ManualPriceOracleZeroPrice();
        if (price > type(uint128).max || confidence > type(uint88).max) revert ManualPriceOracleOverflow();
        Reading memory r = _reading;
        if (updatedAt <= r.updatedAt || updatedAt > block.timestamp) {
            revert ManualPriceOracleBadTimestamp(updatedAt, r.updatedAt);
        }
        uint256 step = maxStepBps;
        if (step != 0 && r.price != 0) {
            uint256 last = r.price;
            uint256 moved = price > last ? price - last : last - price;
            // The share of a full step this push may make: elapsed / period, at most 1 (1 / 1 without a period).
            uint256 period = stepPeriod;
            uint256 elapsed = updatedAt - r.updatedAt;
            (uint256 share, uint256 whole) = period == 0 ? (1, 1) : (elapsed < period ? elapsed : period, period);
            // No overflow: prices are below 2^128, 10^4 and the bound below 2^20, periods below 2^32.
            if (moved * 10_000 * whole > last * step * share) {
                revert ManualPriceOracleStepTooLarge(price, last, step * share / whole);
            }
        }
        _reading = Reading(uint128(price), uint88(confidence), uint40(updatedAt));
        emit PricePushed(price, confidence, updatedAt);
    }

    /// @inheritdoc IPriceOracle
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence) {
        Reading memory r = _reading;
        return (r.price, r.updatedAt, r.confidence);
    }
}
