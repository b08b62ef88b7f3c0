// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IPriceOracle} from "../interfaces/IPriceOracle.sol";

/// @title ManualPriceOracle
/// @notice A price source fed by hand, for devnets and scenario replays: accounts holding `FEEDER_ROLE` (granted by
/// governance) push prices; each push's timestamp must be later than the last one and not in the future.
contract ManualPriceOracle is IPriceOracle, AccessControl {
    /// @notice Accounts allowed to push prices.
    bytes32 public constant FEEDER_ROLE = keccak256("FEEDER_ROLE");

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

    /// @param admin Governance: grants and revokes `FEEDER_ROLE`.
    /// @param feeder The first account allowed to push prices.
    constructor(address admin, address feeder) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(FEEDER_ROLE, feeder);
    }

    /// @notice Records a price observed at `updatedAt`.
    /// @param price Dollars per whole CMP, 18 decimals; must be positive.
    /// @param confidence Half-width of the uncertainty band, same units.
    /// @param updatedAt Unix time of the observation: after the last push, not in the future.
    function pushPrice(uint256 price, uint256 confidence, uint256 updatedAt) external onlyRole(FEEDER_ROLE) {
        if (price == 0) revert ManualPriceOracleZeroPrice();
        if (price > type(uint128).max || confidence > type(uint88).max) revert ManualPriceOracleOverflow();
        uint256 last = _reading.updatedAt;
        if (updatedAt <= last || updatedAt > block.timestamp) revert ManualPriceOracleBadTimestamp(updatedAt, last);
        _reading = Reading(uint128(price), uint88(confidence), uint40(updatedAt));
        emit PricePushed(price, confidence, updatedAt);
    }

    /// @inheritdoc IPriceOracle
    function latestPrice() external view returns (uint256 price, uint256 updatedAt, uint256 confidence) {
        Reading memory r = _reading;
        return (r.price, r.updatedAt, r.confidence);
    }
}
