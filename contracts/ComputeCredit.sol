// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IComputeCredit} from "./interfaces/IComputeCredit.sol";

/// @title ComputeCredit
/// @notice CRD: the protocol's non-transferable US-dollar credit. See `IComputeCredit`.
contract ComputeCredit is IComputeCredit, ERC20, AccessControl {
    /// @notice Protocol contracts that mint and burn credits: the BME core and the job escrow. They keep credits in
    /// their own accounting, never as a balance, so credits cannot be transferred to them.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice The admin of `MINTER_ROLE` and of itself: held only by the deployment while it wires the minters,
    /// then renounced, after which nobody (governance included) can grant or revoke either role.
    bytes32 public constant MINTER_ADMIN_ROLE = keccak256("MINTER_ADMIN_ROLE");
    /// @notice Protocol contracts that credits may be transferred to or from (none at deployment).
    bytes32 public constant PROTOCOL_ROLE = keccak256("PROTOCOL_ROLE");

    /// @param admin The deploying account: grants `PROTOCOL_ROLE` until it hands `DEFAULT_ADMIN_ROLE` to the
    /// timelock, and holds `MINTER_ADMIN_ROLE` until it renounces it.
    constructor(address admin) ERC20("Compute Credit", "CRD") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRoleAdmin(MINTER_ROLE, MINTER_ADMIN_ROLE);
        _setRoleAdmin(MINTER_ADMIN_ROLE, MINTER_ADMIN_ROLE);
        _grantRole(MINTER_ADMIN_ROLE, admin);
    }

    /// @notice 6 decimals: 1 CRD = $1 = 1,000,000 base units.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @inheritdoc IComputeCredit
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IComputeCredit
    function burnFrom(address from, uint256 amount) external onlyRole(MINTER_ROLE) {
        _burn(from, amount);
    }

    /// @dev The single hook: a transfer (neither mint nor burn) needs a protocol contract at one end, and may not
    /// go to a minter (the BME core or the escrow), where the credits would be lost yet still counted outstanding.
    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            if (hasRole(MINTER_ROLE, to)) revert ComputeCreditUnreceivable(to);
            if (!hasRole(PROTOCOL_ROLE, from) && !hasRole(PROTOCOL_ROLE, to)) {
                revert ComputeCreditTransferRestricted(from, to);
            }
        }
        super._update(from, to, value);
    }
}
