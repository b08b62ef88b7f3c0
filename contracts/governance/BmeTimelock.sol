// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title BmeTimelock
/// @notice The protocol's governance: OpenZeppelin's TimelockController, unchanged. Every parameter change is
/// scheduled by a proposer and executed after `minDelay` seconds, so users can see it coming and leave.
contract BmeTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and execution.
    /// @param proposers Accounts that may schedule (and cancel) changes.
    /// @param executors Accounts that may execute ready changes (the zero address: anyone).
    /// @param admin Optional account that may manage the timelock's roles; the zero address for none.
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
