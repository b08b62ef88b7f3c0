// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Status} from "../libraries/CollateralStatus.sol";
import {BmeParameters} from "../libraries/BmeParameters.sol";

/// @title IBurnMintEquilibrium
/// @notice The burn-mint equilibrium core. Users burn CMP for CRD at the conservative oracle price less the mint
/// spread; operators redeem their earned CRD for newly minted CMP at the conservative price less the settle spread.
/// Redemptions re-issue against `remintCredits` (CMP burned earlier) first; the rest is new issuance. Minting of
/// CMP is limited over rolling windows, one for redemptions and one for emissions, each with its own limit that no
/// span of the window's length exceeds; minting of credits stops while the collateral ratio is below the halt
/// threshold, and everything that needs a price stops while the oracle fails its checks.
interface IBurnMintEquilibrium {
    /// @notice `tokensBurned` CMP of `payer` were burned for `credits` CRD at `price`; the credits went to
    /// `recipient` (the payer, or the job escrow when they pay for a job).
    event CreditsMinted(
        address indexed payer, address indexed recipient, uint256 tokensBurned, uint256 credits, uint256 price
    );
    /// @notice `operator` redeemed `credits` of earnings for `tokensMinted` CMP at `price`: `reissued` of them
    /// against remint credits, `newlyIssued` as new supply.
    event Redeemed(
        address indexed operator,
        uint256 credits,
        uint256 tokensMinted,
        uint256 reissued,
        uint256 newlyIssued,
        uint256 price
    );
    /// @notice The status moved from `previous` to `current`; `crBps` is the collateral ratio that caused it.
    event StatusChanged(Status previous, Status current, uint256 crBps);
    /// @notice Governance changed the parameters.
    event ParametersUpdated(BmeParameters.Core parameters);
    /// @notice Governance changed the price oracle.
    event OracleUpdated(address indexed previousOracle, address indexed newOracle);
    /// @notice Governance changed the seed buffer counted in the collateral ratio.
    event SeedUpdated(uint256 seedTokens);
    /// @notice Governance changed the most CMP that redemptions may mint per window.
    event MintLimitUpdated(uint256 mintLimitPerWindow);
    /// @notice Governance changed the most CMP that emissions may mint per window.
    event EmissionLimitUpdated(uint256 emissionLimitPerWindow);
    /// @notice The emission schedule minted `tokens` CMP of emission rewards to `to`.
    event EmissionMinted(address indexed to, uint256 tokens);

    /// @notice An amount of zero was given.
    error BmeZeroAmount();
    /// @notice A burn would mint `credits`, fewer than the minimum mint of `minimum`.
    error BmeBelowMinimumMint(uint256 credits, uint256 minimum);
    /// @notice The call would give `actual`, less than the caller's bound of `minimum`.
    error BmeSlippageExceeded(uint256 actual, uint256 minimum);
    /// @notice The oracle's price from `updatedAt` is older than the oracle's `maxAge` seconds (or from the future).
    error BmeOracleStale(uint256 updatedAt, uint256 maxAge);
    /// @notice The oracle reported a price of zero, or failed without a reason (an oracle with a reason, such as a
    /// sequencer down, reverts with its own error).
    error BmeOracleNonPositive();
    /// @notice The oracle's confidence band `confidence` is wider than `maxConfidenceBps` of `price`.
    error BmeOracleUncertain(uint256 price, uint256 confidence, uint256 maxConfidenceBps);
    /// @notice The protocol's status `status` forbids this call.
    error BmeHalted(Status status);
    /// @notice Redemptions (or emissions) may mint only `available` more CMP in their window; `requested` was asked.
    error BmeRateLimited(uint256 requested, uint256 available);
    /// @notice A mint limit of `limit` per window is above the hard maximum `maximum`.
    error BmeMintLimitTooHigh(uint256 limit, uint256 maximum);
    /// @notice A parameter set that fails {BmeParameters-isValid}, or a zero address.
    error BmeInvalidParameters();
    /// @notice Only the job escrow may call this.
    error BmeNotJobEscrow(address caller);

    /// @notice Burns `tokens` of the caller's CMP for CRD credited to the caller.
    /// @param tokens CMP to burn, 18 decimals; the caller must have approved this contract for them.
    /// @param minCredits The fewest credits the caller accepts (slippage bound).
    /// @return credits CRD minted to the caller.
    function burn(uint256 tokens, uint256 minCredits) external returns (uint256 credits);

    /// @notice Burns `tokens` of `payer`'s CMP for credits that stay with the job escrow, which opens a job.
    /// @dev Only callable by the job escrow, for the payer that called it. The payer must have approved this
    /// contract for the tokens (or signed a permit the escrow has submitted).
    /// @return credits Credits reserved for the payer's job.
    function burnForEscrow(address payer, uint256 tokens, uint256 minCredits) external returns (uint256 credits);

    /// @notice Redeems `credits` of the caller's earnings in the job escrow for newly minted CMP.
    /// @param credits CRD base units of earnings to redeem.
    /// @param minTokens The fewest CMP the caller accepts (slippage bound).
    /// @return tokens CMP minted to the caller.
    function redeem(uint256 credits, uint256 minTokens) external returns (uint256 tokens);

    /// @notice Mints `tokens` CMP of emission rewards to `to`, counted against the emissions' own rolling window
    /// (apart from redemptions'). Only callable by the emission schedule (`EMITTER_ROLE`, fixed at deployment),
    /// which enforces the hard cap.
    function mintEmission(address to, uint256 tokens) external;

    /// @notice Reads the oracle and records the status it implies, without reverting when the oracle fails.
    /// A failing oracle records HaltOracle beside the collateral status, which it leaves unchanged, so a brief
    /// outage does not count as a collateral halt once the oracle is back.
    /// @return status The status now recorded.
    function syncStatus() external returns (Status status);

    /// @notice Changes the parameters. Only callable by governance (the timelock).
    function setParameters(BmeParameters.Core calldata parameters) external;

    /// @notice Changes the price oracle. Only callable by governance. The oracle must be a contract answering a
    /// positive `maxAge` (its freshness limit).
    function setOracle(address oracle) external;

    /// @notice Changes the seed buffer, in CMP, counted as backing in the collateral ratio. Only governance.
    function setSeed(uint88 seedTokens) external;

    /// @notice Changes the most CMP redemptions may mint per window, at most `MAX_MINT_LIMIT_PER_WINDOW` of
    /// `BmeParameters` (`BmeMintLimitTooHigh`). Only callable by governance.
    function setMintLimit(uint128 mintLimitPerWindow) external;

    /// @notice Changes the most CMP emissions may mint per window, at most `MAX_MINT_LIMIT_PER_WINDOW` of
    /// `BmeParameters` (`BmeMintLimitTooHigh`). Only callable by governance.
    function setEmissionLimit(uint128 emissionLimitPerWindow) external;

    /// @notice Stops burns, redemptions and emission mints for at most `MAX_PAUSE`, after which they resume by
    /// themselves; a new pause may start only `PAUSE_COOLDOWN` after the last one ended. Only callable by the
    /// guardian (`PAUSER_ROLE`).
    function pause() external;

    /// @notice Ends the current pause early. Only callable by governance.
    function unpause() external;

    /// @notice The current parameters.
    function parameters() external view returns (BmeParameters.Core memory);

    /// @notice The status recorded by the last state-changing call: HaltOracle while `syncStatus` last found the
    /// oracle failing and no good reading came since, else the collateral status.
    function status() external view returns (Status);

    /// @notice CMP burned and not yet re-issued: what later redemptions re-issue against.
    function remintCredits() external view returns (uint256);

    /// @notice All CRD not yet redeemed: free balances, job reservations and operators' earnings.
    function outstandingCredits() external view returns (uint256);

    /// @notice CMP minted by redemptions beyond the remint credits, in all.
    function totalNewIssuance() external view returns (uint256);

    /// @notice CMP minted by redemptions against remint credits, in all.
    function totalReissued() external view returns (uint256);

    /// @notice The collateral ratio in basis points at the oracle's current price.
    function collateralRatioBps() external view returns (uint256);

    /// @notice CMP that redemptions may still mint in their window now.
    function mintAvailable() external view returns (uint256);

    /// @notice CMP that emissions may still mint in their window now.
    function emissionAvailable() external view returns (uint256);

    /// @notice Credits a burn of `tokens` would give now, after the spread and the conservative price.
    function quoteBurn(uint256 tokens) external view returns (uint256 credits);

    /// @notice CMP to burn now to receive at least `credits`.
    function quoteTokensForCredits(uint256 credits) external view returns (uint256 tokens);

    /// @notice CMP a redemption of `credits` would mint now.
    function quoteRedeem(uint256 credits) external view returns (uint256 tokens);
}
