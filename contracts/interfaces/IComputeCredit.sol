// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IComputeCredit
/// @notice CRD, a US-dollar credit with 6 decimals (1 CRD = $1 = 1e6 base units). Credits come into existence only by
/// burning CMP at the oracle price (through the BME core). The ERC-20 balances hold the credits that are free in a
/// payer's hands; credits reserved for jobs and operators' earnings are held by the job escrow's own accounting.
/// Transfers are refused unless the sender or the recipient is a protocol contract (`PROTOCOL_ROLE`), and always to
/// a minter (the BME core, the job escrow), which holds credits in its own accounting and could never spend them.
interface IComputeCredit is IERC20 {
    /// @notice A transfer between two accounts that are not protocol contracts was attempted.
    error ComputeCreditTransferRestricted(address from, address to);
    /// @notice Credits were sent to `to`, a minter (the BME core or the job escrow), where they would be lost.
    error ComputeCreditUnreceivable(address to);

    /// @notice Mints `amount` credits to `to`. Only callable by holders of `MINTER_ROLE`.
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` credits of `from`. Only callable by holders of `MINTER_ROLE`, which act for `from`
    /// only when `from` asked them to (the escrow burns a payer's credits when that payer opens a job).
    function burnFrom(address from, uint256 amount) external;
}
