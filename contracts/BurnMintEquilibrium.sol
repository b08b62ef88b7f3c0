// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IBurnMintEquilibrium} from "./interfaces/IBurnMintEquilibrium.sol";
import {IComputeToken} from "./interfaces/IComputeToken.sol";
import {IComputeCredit} from "./interfaces/IComputeCredit.sol";
import {IPriceOracle} from "./interfaces/IPriceOracle.sol";
import {IJobEscrow} from "./interfaces/IJobEscrow.sol";
import {BmeMath} from "./libraries/BmeMath.sol";
import {BmeParameters} from "./libraries/BmeParameters.sol";
import {CollateralStatus, Status} from "./libraries/CollateralStatus.sol";
import {RollingWindow} from "./libraries/RollingWindow.sol";
import {ExpiringPausable} from "./utils/ExpiringPausable.sol";

/// @title BurnMintEquilibrium
/// @notice The BME core: burns CMP for credits, redeems operators' earnings for CMP, and keeps the collateral
/// status and the two mint limits. See `IBurnMintEquilibrium` and `contracts/INVARIANTS.md`.
contract BurnMintEquilibrium is IBurnMintEquilibrium, AccessControl, ExpiringPausable {
    /// @notice Governance: the timelock. Changes parameters, the oracle, the seed, the mint limits; unpauses early.
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// @notice The guardian that may pause at once, for at most `MAX_PAUSE` (see {ExpiringPausable}).
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The emission schedule, which mints operators' emission rewards through this contract.
    bytes32 public constant EMITTER_ROLE = keccak256("EMITTER_ROLE");
    /// @notice The admin of `EMITTER_ROLE` and of itself: held only by the deployment while it wires the emission
    /// schedule, then renounced, after which nobody can grant or revoke either role: the emitters are fixed.
    bytes32 public constant EMITTER_ADMIN_ROLE = keccak256("EMITTER_ADMIN_ROLE");

    IComputeToken public immutable token;
    IComputeCredit public immutable credit;
    /// @dev Fixed at deployment: a new escrow could neither see the old one's earnings nor be trusted with the
    /// approvals payers gave this contract.
    IJobEscrow private immutable _jobEscrow;

    /// @dev Declared first so that it shares a slot with the pause state, which every burn and redemption reads.
    /// Set when `syncStatus` finds the oracle failing, cleared by the next good reading; kept apart from the
    /// collateral status so that an oracle outage does not count as a collateral halt.
    bool private _oracleHalted;
    /// @dev Read by every burn and redemption: one slot.
    BmeParameters.Core private _params;
    /// @dev One slot: the oracle, the seed buffer and the collateral status (never HaltOracle).
    address private _oracle;
    uint88 private _seedTokens;
    Status private _status;
    /// @dev One slot: written by every burn and redemption.
    uint128 private _remintCredits;
    uint128 private _outstandingCredits;
    /// @dev Redemption-only state.
    RollingWindow.State private _redemptionWindow;
    uint128 private _mintLimitPerWindow;
    uint128 private _totalNewIssuance;
    uint256 private _totalReissued;
    /// @dev Emission-only state: emissions have their own window, so a release cannot use up redemptions' room.
    RollingWindow.State private _emissionWindow;
    uint128 private _emissionLimitPerWindow;

    /// @param token_ CMP; this contract needs its `MINTER_ROLE` to pay redemptions.
    /// @param credit_ CRD; this contract needs its `MINTER_ROLE` to mint credits for plain burns.
    /// @param oracle_ The price source.
    /// @param jobEscrow_ The job escrow whose operators' earnings are redeemed here, fixed for good.
    /// @param governor The timelock (admin and governor).
    /// @param guardian The account that may pause.
    /// @dev The deploying account holds `EMITTER_ADMIN_ROLE`: it grants `EMITTER_ROLE` to the emission schedule, then
    /// renounces it.
    constructor(
        IComputeToken token_,
        IComputeCredit credit_,
        address oracle_,
        IJobEscrow jobEscrow_,
        address governor,
        address guardian
    ) {
        if (
            address(token_) == address(0) || address(credit_) == address(0) || !_isOracle(oracle_)
                || address(jobEscrow_) == address(0)
        ) {
            revert BmeInvalidParameters();
        }
        token = token_;
        credit = credit_;
        _jobEscrow = jobEscrow_;
        _oracle = oracle_;
        _params = BmeParameters.defaults();
        _mintLimitPerWindow = BmeParameters.MINT_LIMIT_PER_WINDOW;
        _emissionLimitPerWindow = BmeParameters.MINT_LIMIT_PER_WINDOW;
        _redemptionWindow.start = uint48(block.timestamp);
        _emissionWindow.start = uint48(block.timestamp);
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(GOVERNOR_ROLE, governor);
        _grantRole(PAUSER_ROLE, guardian);
        _setRoleAdmin(EMITTER_ROLE, EMITTER_ADMIN_ROLE);
        _setRoleAdmin(EMITTER_ADMIN_ROLE, EMITTER_ADMIN_ROLE);
        _grantRole(EMITTER_ADMIN_ROLE, msg.sender);
    }

    // ---------------------------------------------------------------- burns

    /// @inheritdoc IBurnMintEquilibrium
    function burn(uint256 tokens, uint256 minCredits) external whenNotPaused returns (uint256 credits) {
        credits = _burnForCredits(msg.sender, msg.sender, tokens, minCredits);
        credit.mint(msg.sender, credits);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function burnForEscrow(address payer, uint256 tokens, uint256 minCredits)
        external
        whenNotPaused
        returns (uint256 credits)
    {
        if (msg.sender != address(_jobEscrow)) revert BmeNotJobEscrow(msg.sender);
        credits = _burnForCredits(payer, msg.sender, tokens, minCredits);
    }

    /// @dev Checks, accounting and the burn shared by both burn paths; the caller delivers the credits.
    function _burnForCredits(address payer, address recipient, uint256 tokens, uint256 minCredits)
        private
        returns (uint256 credits)
    {
        if (tokens == 0) revert BmeZeroAmount();
        BmeParameters.Core memory p = _params;
        (uint256 price, uint256 confidence) = _checkedPrice(p);
        uint256 remint = _remintCredits;
        uint256 outstanding = _outstandingCredits;
        Status before = _status;
        Status current = _nextStatus(before, p, remint, outstanding, price);
        if (current == Status.HaltCR) revert BmeHalted(current);

        uint256 burnPrice = BmeMath.burnPriceDown(price, confidence, p.confidenceMultiplier);
        credits = BmeMath.toCreditsDown(tokens, burnPrice, p.mintSpreadBps);
        if (credits < p.minMintCredits) revert BmeBelowMinimumMint(credits, p.minMintCredits);
        if (credits < minCredits) revert BmeSlippageExceeded(credits, minCredits);

        remint += tokens;
        outstanding += credits;
        // Both fit 128 bits: CMP's supply and the credits minted from it are bounded far below 2^128.
        _remintCredits = uint128(remint);
        _outstandingCredits = uint128(outstanding);
        _recordStatus(before, _nextStatus(current, p, remint, outstanding, price), remint, outstanding, price);
        emit CreditsMinted(payer, recipient, tokens, credits, burnPrice);

        token.burnFrom(payer, tokens);
    }

    // ---------------------------------------------------------------- redemptions

    /// @inheritdoc IBurnMintEquilibrium
    function redeem(uint256 credits, uint256 minTokens) external whenNotPaused returns (uint256 tokens) {
        if (credits == 0) revert BmeZeroAmount();
        IJobEscrow escrow = _jobEscrow;
        BmeParameters.Core memory p = _params;
        (uint256 price, uint256 confidence) = _checkedPrice(p);
        uint256 redeemPrice = BmeMath.redeemPriceUp(price, confidence, p.confidenceMultiplier);
        tokens = BmeMath.toTokensDown(credits, redeemPrice, p.settleSpreadBps);
        if (tokens == 0) revert BmeZeroAmount();
        if (tokens < minTokens) revert BmeSlippageExceeded(tokens, minTokens);
        uint256 earned = escrow.earningsOf(msg.sender);
        if (earned < credits) revert IJobEscrow.JobEscrowInsufficientEarnings(msg.sender, earned, credits);
        _consume(_redemptionWindow, _mintLimitPerWindow, tokens, p.mintWindow);
        _accountRedemption(p, credits, tokens, price, redeemPrice);

        escrow.debitEarnings(msg.sender, credits);
        token.mint(msg.sender, tokens);
    }

    /// @dev The effects of a redemption: re-issue against remint credits first, the rest is new issuance.
    function _accountRedemption(
        BmeParameters.Core memory p,
        uint256 credits,
        uint256 tokens,
        uint256 price,
        uint256 redeemPrice
    ) private {
        uint256 remint = _remintCredits;
        uint256 reissued = tokens < remint ? tokens : remint;
        // Cannot underflow: the caller's earnings (checked) are part of the outstanding credits.
        uint256 outstanding = _outstandingCredits - credits;
        remint -= reissued;
        _remintCredits = uint128(remint);
        _outstandingCredits = uint128(outstanding);
        _totalReissued += reissued;
        _totalNewIssuance += uint128(tokens - reissued);
        Status before = _status;
        _recordStatus(before, _nextStatus(before, p, remint, outstanding, price), remint, outstanding, price);
        emit Redeemed(msg.sender, credits, tokens, reissued, tokens - reissued, redeemPrice);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function mintEmission(address to, uint256 tokens) external whenNotPaused onlyRole(EMITTER_ROLE) {
        if (tokens == 0) revert BmeZeroAmount();
        _consume(_emissionWindow, _emissionLimitPerWindow, tokens, _params.mintWindow);
        emit EmissionMinted(to, tokens);
        token.mint(to, tokens);
    }

    /// @dev Counts `amount` against `window` under `limit`, or reverts when it does not fit.
    function _consume(RollingWindow.State storage window, uint256 limit, uint256 amount, uint256 length) private {
        (bool ok, uint256 available) = RollingWindow.consume(window, block.timestamp, length, limit, amount);
        if (!ok) revert BmeRateLimited(amount, available);
    }

    // ---------------------------------------------------------------- status

    /// @inheritdoc IBurnMintEquilibrium
    /// @dev A failing oracle sets the oracle halt and leaves the collateral status (and so its hysteresis) as it
    /// was: a price that is stale for a moment is not a collateral halt.
    function syncStatus() external returns (Status current) {
        (bool ok, uint256 price,) = _tryPrice();
        Status before = _status;
        if (!ok) {
            if (!_oracleHalted) {
                _oracleHalted = true;
                emit StatusChanged(before, Status.HaltOracle, 0);
            }
            return Status.HaltOracle;
        }
        BmeParameters.Core memory p = _params;
        uint256 remint = _remintCredits;
        uint256 outstanding = _outstandingCredits;
        current = _nextStatus(before, p, remint, outstanding, price);
        _recordStatus(before, current, remint, outstanding, price);
    }

    /// @dev Reads the oracle and reverts with the reason when the reading fails a check: the oracle's own reason
    /// when it cannot give a reading (a sequencer down, an answer out of bounds), else this contract's. Freshness
    /// is judged against the oracle's `maxAge`.
    function _checkedPrice(BmeParameters.Core memory p) private view returns (uint256 price, uint256 confidence) {
        IPriceOracle source = IPriceOracle(_oracle);
        uint256 updatedAt;
        try source.latestPrice() returns (uint256 price_, uint256 updatedAt_, uint256 confidence_) {
            (price, updatedAt, confidence) = (price_, updatedAt_, confidence_);
        } catch (bytes memory reason) {
            if (reason.length == 0) revert BmeOracleNonPositive();
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
        if (price == 0) revert BmeOracleNonPositive();
        uint256 maxAge = source.maxAge();
        if (updatedAt == 0 || updatedAt > block.timestamp || block.timestamp - updatedAt > maxAge) {
            revert BmeOracleStale(updatedAt, maxAge);
        }
        if (!BmeMath.confidenceWithin(price, confidence, p.oracleMaxConfidenceBps)) {
            revert BmeOracleUncertain(price, confidence, p.oracleMaxConfidenceBps);
        }
    }

    /// @dev Reads the oracle without reverting: `ok` is false when any check fails.
    function _tryPrice() private view returns (bool ok, uint256 price, uint256 confidence) {
        try this.checkedPrice() returns (uint256 price_, uint256 confidence_) {
            return (true, price_, confidence_);
        } catch {
            return (false, 0, 0);
        }
    }

    /// @notice The oracle's price and confidence, reverting with the reason when a check fails.
    /// @return price Dollars per CMP, 18 decimals.
    /// @return confidence The half-width of the confidence band, same units.
    function checkedPrice() external view returns (uint256 price, uint256 confidence) {
        return _checkedPrice(_params);
    }

    function _nextStatus(Status previous, BmeParameters.Core memory p, uint256 remint, uint256 outstanding, uint256 price)
        private
        view
        returns (Status)
    {
        uint256 cr = BmeMath.collateralRatioBpsDown(remint + _seedTokens, price, outstanding);
        return CollateralStatus.next(previous, true, cr, p.crWarnBps, p.crHaltBps, p.crHysteresisBps);
    }

    /// @dev Records the collateral status `current` computed from a good price reading, which also ends an oracle
    /// halt; emits when the status shown by {status} changes.
    function _recordStatus(Status before, Status current, uint256 remint, uint256 outstanding, uint256 price) private {
        bool oracleHalted = _oracleHalted;
        if (current == before && !oracleHalted) return;
        if (current != before) _status = current;
        if (oracleHalted) _oracleHalted = false;
        uint256 cr = BmeMath.collateralRatioBpsDown(remint + _seedTokens, price, outstanding);
        emit StatusChanged(oracleHalted ? Status.HaltOracle : before, current, cr);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IBurnMintEquilibrium
    function setParameters(BmeParameters.Core calldata parameters_) external onlyRole(GOVERNOR_ROLE) {
        if (!BmeParameters.isValid(parameters_)) revert BmeInvalidParameters();
        _params = parameters_;
        emit ParametersUpdated(parameters_);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function setOracle(address oracle_) external onlyRole(GOVERNOR_ROLE) {
        if (!_isOracle(oracle_)) revert BmeInvalidParameters();
        emit OracleUpdated(_oracle, oracle_);
        _oracle = oracle_;
    }

    /// @dev Whether `oracle_` is a contract answering a positive `maxAge`: the freshness limit every read needs.
    function _isOracle(address oracle_) private view returns (bool) {
        if (oracle_.code.length == 0) return false;
        try IPriceOracle(oracle_).maxAge() returns (uint256 age) {
            return age > 0;
        } catch {
            return false;
        }
    }

    /// @inheritdoc IBurnMintEquilibrium
    function setSeed(uint88 seedTokens) external onlyRole(GOVERNOR_ROLE) {
        _seedTokens = seedTokens;
        emit SeedUpdated(seedTokens);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function setMintLimit(uint128 mintLimitPerWindow) external onlyRole(GOVERNOR_ROLE) {
        _checkLimit(mintLimitPerWindow);
        _mintLimitPerWindow = mintLimitPerWindow;
        emit MintLimitUpdated(mintLimitPerWindow);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function setEmissionLimit(uint128 emissionLimitPerWindow) external onlyRole(GOVERNOR_ROLE) {
        _checkLimit(emissionLimitPerWindow);
        _emissionLimitPerWindow = emissionLimitPerWindow;
        emit EmissionLimitUpdated(emissionLimitPerWindow);
    }

    function _checkLimit(uint256 limit) private pure {
        if (limit > BmeParameters.MAX_MINT_LIMIT_PER_WINDOW) {
            revert BmeMintLimitTooHigh(limit, BmeParameters.MAX_MINT_LIMIT_PER_WINDOW);
        }
    }

    /// @inheritdoc IBurnMintEquilibrium
    function pause() external onlyRole(PAUSER_ROLE) {
        _pauseExpiring();
    }

    /// @inheritdoc IBurnMintEquilibrium
    function unpause() external onlyRole(GOVERNOR_ROLE) {
        _unpauseEarly();
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IBurnMintEquilibrium
    function parameters() external view returns (BmeParameters.Core memory) {
        return _params;
    }

    /// @notice The price oracle.
    function oracle() external view returns (address) {
        return _oracle;
    }

    /// @notice The seed buffer, in CMP, counted as backing in the collateral ratio.
    function seedTokens() external view returns (uint256) {
        return _seedTokens;
    }

    /// @notice The most CMP redemptions may mint per window.
    function mintLimitPerWindow() external view returns (uint256) {
        return _mintLimitPerWindow;
    }

    /// @notice The most CMP emissions may mint per window (a window of their own).
    function emissionLimitPerWindow() external view returns (uint256) {
        return _emissionLimitPerWindow;
    }

    /// @notice The job escrow whose operators' earnings are redeemed here.
    function jobEscrow() external view returns (address) {
        return address(_jobEscrow);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function status() external view returns (Status) {
        return _oracleHalted ? Status.HaltOracle : _status;
    }

    /// @notice The collateral status alone: what {status} shows when the oracle is not halted.
    function collateralStatus() external view returns (Status) {
        return _status;
    }

    /// @inheritdoc IBurnMintEquilibrium
    function remintCredits() external view returns (uint256) {
        return _remintCredits;
    }

    /// @inheritdoc IBurnMintEquilibrium
    function outstandingCredits() external view returns (uint256) {
        return _outstandingCredits;
    }

    /// @inheritdoc IBurnMintEquilibrium
    function totalNewIssuance() external view returns (uint256) {
        return _totalNewIssuance;
    }

    /// @inheritdoc IBurnMintEquilibrium
    function totalReissued() external view returns (uint256) {
        return _totalReissued;
    }

    /// @inheritdoc IBurnMintEquilibrium
    function collateralRatioBps() external view returns (uint256) {
        (uint256 price,) = _checkedPrice(_params);
        return BmeMath.collateralRatioBpsDown(uint256(_remintCredits) + _seedTokens, price, _outstandingCredits);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function mintAvailable() external view returns (uint256) {
        return RollingWindow.available(_redemptionWindow, block.timestamp, _params.mintWindow, _mintLimitPerWindow);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function emissionAvailable() external view returns (uint256) {
        return RollingWindow.available(_emissionWindow, block.timestamp, _params.mintWindow, _emissionLimitPerWindow);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function quoteBurn(uint256 tokens) external view returns (uint256) {
        BmeParameters.Core memory p = _params;
        (uint256 price, uint256 confidence) = _checkedPrice(p);
        return BmeMath.toCreditsDown(tokens, BmeMath.burnPriceDown(price, confidence, p.confidenceMultiplier), p.mintSpreadBps);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function quoteTokensForCredits(uint256 credits) external view returns (uint256) {
        BmeParameters.Core memory p = _params;
        (uint256 price, uint256 confidence) = _checkedPrice(p);
        uint256 burnPrice = BmeMath.burnPriceDown(price, confidence, p.confidenceMultiplier);
        if (burnPrice == 0) revert BmeOracleNonPositive();
        return BmeMath.toTokensUp(credits, burnPrice, p.mintSpreadBps);
    }

    /// @inheritdoc IBurnMintEquilibrium
    function quoteRedeem(uint256 credits) external view returns (uint256) {
        BmeParameters.Core memory p = _params;
        (uint256 price, uint256 confidence) = _checkedPrice(p);
        return BmeMath.toTokensDown(credits, BmeMath.redeemPriceUp(price, confidence, p.confidenceMultiplier), p.settleSpreadBps);
    }
}
