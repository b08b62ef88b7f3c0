// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IComputeToken
/// @notice CMP, the protocol's market token: an 18-decimal ERC-20 that anyone may burn and that only protocol
/// contracts holding `MINTER_ROLE` may mint: the BME core alone (redemptions, and the emission schedule's mints),
/// fixed at deployment.
interface IComputeToken is IERC20 {
    /// @notice Mints `amount` CMP to `to`.
    /// @dev Only callable by holders of `MINTER_ROLE`. Emits {IERC20-Transfer} from the zero address.
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` of the caller's CMP.
    function burn(uint256 amount) external;

    /// @notice Burns `amount` of `account`'s CMP, spending the caller's allowance.
    function burnFrom(address account, uint256 amount) external;
}
