// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IComputeToken} from "./interfaces/IComputeToken.sol";

/// @title ComputeToken
/// @notice CMP: the protocol's market token. See `IComputeToken`.
contract ComputeToken is IComputeToken, ERC20, ERC20Burnable, ERC20Permit, AccessControl {
    /// @notice Protocol contracts that mint: the BME core alone (redemptions, and emissions for the schedule).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice The admin of `MINTER_ROLE` and of itself: held only by the deployment while it wires the minters and
    /// mints the genesis allocation, then renounced, after which nobody (governance included) can grant or revoke
    /// either role: the minters are fixed.
    bytes32 public constant MINTER_ADMIN_ROLE = keccak256("MINTER_ADMIN_ROLE");

    /// @param admin The deploying account: admin until it hands `DEFAULT_ADMIN_ROLE` to the timelock, and holder
    /// of `MINTER_ADMIN_ROLE` until it renounces it.
    constructor(address admin) ERC20("Compute Token", "CMP") ERC20Permit("Compute Token") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRoleAdmin(MINTER_ROLE, MINTER_ADMIN_ROLE);
        _setRoleAdmin(MINTER_ADMIN_ROLE, MINTER_ADMIN_ROLE);
        _grantRole(MINTER_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IComputeToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IComputeToken
    function burn(uint256 amount) public override(IComputeToken, ERC20Burnable) {
        super.burn(amount);
    }

    /// @inheritdoc IComputeToken
    function burnFrom(address account, uint256 amount) public override(IComputeToken, ERC20Burnable) {
        super.burnFrom(account, amount);
    }
}
