// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IJobEscrow, JobStatus} from "./interfaces/IJobEscrow.sol";
import {IBurnMintEquilibrium} from "./interfaces/IBurnMintEquilibrium.sol";
import {IComputeCredit} from "./interfaces/IComputeCredit.sol";
import {ModelPriceBook} from "./ModelPriceBook.sol";
import {ExpiringPausable} from "./utils/ExpiringPausable.sol";

/// @title JobEscrow
/// @notice Reserves credits for inference jobs and settles them. Credits reserved for open jobs and operators'
/// earnings are held in this contract's accounting: the escrow burns a payer's CRD when a job is opened from a
/// balance, and mints CRD back to the payer for a refund. See `IJobEscrow` and `contracts/INVARIANTS.md`.
/// @dev Calls out only to the protocol's own BME core, CMP and CRD, none of which calls back.
contract JobEscrow is IJobEscrow, ModelPriceBook, ExpiringPausable {
    /// @notice The relayer(s) allowed to settle jobs.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @notice The guardian that may pause the opening of jobs at once, for at most `MAX_PAUSE`.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice This project's default: a job must be settled within a day or it may be refunded.
    uint32 public constant DEFAULT_MAX_JOB_DURATION = 1 days;
    /// @notice Akash AEP-79's bounds on the epoch length.
    uint256 public constant MIN_EPOCH_LENGTH = 65;
    uint256 public constant MAX_EPOCH_LENGTH = 93_600;
    uint256 private constant HALF = 128;
    uint256 private constant LOW = type(uint128).max;

    IBurnMintEquilibrium public immutable bme;
    IComputeCredit public immutable credit;
    IERC20Permit public immutable token;
    /// @inheritdoc IJobEscrow
    uint256 public immutable epochGenesis;
    /// @inheritdoc IJobEscrow
    uint256 public immutable epochLength;

    /// @dev Declared first so that it shares a slot with Pausable's flag: both are read by every job opening.
    uint32 private _maxJobDuration;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(address operator => uint256) private _earnings;
    /// @dev Work per operator, two epochs per slot (even epoch in the low 128 bits), so a reward claim over
    /// several epochs reads half as many slots.
    mapping(address operator => mapping(uint256 epochPair => uint256)) private _work;
    /// @dev Every operator's work, packed the same way.
    mapping(uint256 epochPair => uint256) private _epochWork;

    /// @param bme_ The BME core, which burns CMP for the credits of {burnForJob} and redeems earnings.
    /// @param credit_ CRD; this contract needs its `MINTER_ROLE`.
    /// @param token_ CMP, for permits.
    /// @param governor The timelock.
    /// @param guardian The account that may pause.
    /// @param epochLength_ Seconds per epoch; epoch 0 starts at deployment.
    constructor(
        IBurnMintEquilibrium bme_,
        IComputeCredit credit_,
        IERC20Permit token_,
        address governor,
        address guardian,
        uint256 epochLength_
    ) {
        if (epochLength_ < MIN_EPOCH_LENGTH || epochLength_ > MAX_EPOCH_LENGTH) {
            revert JobEscrowInvalidEpochLength(epochLength_);
        }
        bme = bme_;
        credit = credit_;
        token = token_;
        epochGenesis = block.timestamp;
        epochLength = epochLength_;
        _maxJobDuration = DEFAULT_MAX_JOB_DURATION;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(GOVERNOR_ROLE, governor);
        _grantRole(PAUSER_ROLE, guardian);
    }

    // ---------------------------------------------------------------- opening

    /// @inheritdoc IJobEscrow
    function openJob(uint16 modelId, uint256 maxCredits, bytes32 specHash, uint32 deadline)
        external
        whenNotPaused
        returns (uint256 jobId)
    {
        if (maxCredits == 0) revert JobEscrowZeroAmount();
        jobId = _checkNewJob(msg.sender, modelId, specHash, deadline);
        _storeJob(jobId, msg.sender, modelId, maxCredits, 0, deadline, specHash);
        credit.burnFrom(msg.sender, maxCredits);
    }

    /// @inheritdoc IJobEscrow
    function burnForJob(uint256 tokens, uint256 minCredits, uint16 modelId, bytes32 specHash, uint32 deadline)
        external
        whenNotPaused
        returns (uint256 jobId, uint256 credits)
    {
        return _burnForJob(tokens, minCredits, modelId, specHash, deadline);
    }

    /// @inheritdoc IJobEscrow
    function burnForJobWithPermit(
        uint256 tokens,
        uint256 minCredits,
        uint16 modelId,
        bytes32 specHash,
        uint32 deadline,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused returns (uint256 jobId, uint256 credits) {
        // A permit front-run by someone else has already set the allowance; the burn then proceeds, or fails
        // with the token's own allowance error if it did not (OpenZeppelin's recommended pattern).
        try token.permit(msg.sender, address(bme), tokens, permitDeadline, v, r, s) {} catch {}
        return _burnForJob(tokens, minCredits, modelId, specHash, deadline);
    }

    function _burnForJob(uint256 tokens, uint256 minCredits, uint16 modelId, bytes32 specHash, uint32 deadline)
        private
        returns (uint256 jobId, uint256 credits)
    {
        jobId = _checkNewJob(msg.sender, modelId, specHash, deadline);
        // The credits are known only after the burn; the BME core is a protocol contract that makes no call back.
        credits = bme.burnForEscrow(msg.sender, tokens, minCredits);
        _storeJob(jobId, msg.sender, modelId, credits, tokens, deadline, specHash);
    }

    function _checkNewJob(address payer, uint16 modelId, bytes32 specHash, uint32 deadline)
        private
        view
        returns (uint256 jobId)
    {
        jobId = jobIdFor(payer, specHash);
        if (_jobs[jobId].status != JobStatus.None) revert JobEscrowJobExists(jobId);
        if (!_isListed(modelId)) revert JobEscrowModelNotListed(modelId);
        uint256 latest = block.timestamp + _maxJobDuration;
        if (deadline <= block.timestamp || deadline > latest) revert JobEscrowInvalidDeadline(deadline, latest);
    }

    function _storeJob(
        uint256 jobId,
        address payer,
        uint16 modelId,
        uint256 maxCredits,
        uint256 tokensBurned,
        uint32 deadline,
        bytes32 specHash
    ) private {
        if (maxCredits > type(uint40).max) revert JobEscrowMaxCreditsTooLarge(maxCredits);
        _jobs[jobId] = Job(payer, modelId, deadline, uint40(maxCredits), JobStatus.Open);
        emit JobOpened(jobId, payer, modelId, maxCredits, tokensBurned, deadline, specHash);
    }

    // ---------------------------------------------------------------- closing

    /// @inheritdoc IJobEscrow
    /// @dev An operator's charges are summed over each run of consecutive settlements it served and written once
    /// per run, to its earnings and to its work in the current epoch.
    function settle(Settlement[] calldata settlements) external onlyRole(RELAYER_ROLE) {
        uint256 epoch = currentEpoch();
        uint256 n = settlements.length;
        address runOperator;
        uint256 runCredits;
        uint256 batchCredits;
        for (uint256 i; i < n; ++i) {
            Settlement calldata s = settlements[i];
            Job storage job = _jobs[s.jobId];
            Job memory j = job;
            if (j.status != JobStatus.Open) revert JobEscrowJobNotOpen(s.jobId, j.status);
            if (block.timestamp > j.deadline) revert JobEscrowDeadlinePassed(s.jobId, j.deadline);
            if (s.operator == address(0)) revert JobEscrowZeroOperator(s.jobId);

            uint256 cost = costOf(j.modelId, s.inputTokens, s.outputTokens);
            uint256 charge = cost < j.maxCredits ? cost : j.maxCredits;
            uint256 refund = j.maxCredits - charge;
            job.status = JobStatus.Settled;
            if (s.operator != runOperator) {
                _recordWork(runOperator, epoch, runCredits);
                (runOperator, runCredits) = (s.operator, 0);
            }
            runCredits += charge;
            batchCredits += charge;
            emit JobSettled(s.jobId, s.operator, s.inputTokens, s.outputTokens, charge, refund, s.resultHash);
            if (refund != 0) credit.mint(j.payer, refund);
        }
        _recordWork(runOperator, epoch, runCredits);
        if (batchCredits != 0) _epochWork[epoch >> 1] = _addPacked(_epochWork[epoch >> 1], epoch, batchCredits);
    }

    /// @dev Adds `credits` to `operator`'s earnings and to its work in `epoch`.
    function _recordWork(address operator, uint256 epoch, uint256 credits) private {
        if (credits == 0) return;
        _earnings[operator] += credits;
        _work[operator][epoch >> 1] = _addPacked(_work[operator][epoch >> 1], epoch, credits);
        emit WorkRecorded(operator, epoch, credits);
    }

    /// @dev `packed` with `amount` added to the half that holds `epoch`.
    function _addPacked(uint256 packed, uint256 epoch, uint256 amount) private pure returns (uint256) {
        uint256 shift = (epoch & 1) * HALF;
        uint256 total = ((packed >> shift) & LOW) + amount;
        // A half overflows only past 3.4e32 credit units (3.4e26 dollars) in one epoch: it reverts by design.
        if (total > LOW) revert JobEscrowMaxCreditsTooLarge(total);
        return (packed & ~(LOW << shift)) | (total << shift);
    }

    function _unpacked(uint256 packed, uint256 epoch) private pure returns (uint256) {
        return (packed >> ((epoch & 1) * HALF)) & LOW;
    }

    /// @inheritdoc IJobEscrow
    function expire(uint256 jobId) external {
        Job storage job = _jobs[jobId];
        Job memory j = job;
        if (j.status != JobStatus.Open) revert JobEscrowJobNotOpen(jobId, j.status);
        if (block.timestamp <= j.deadline) revert JobEscrowDeadlineNotReached(jobId, j.deadline);
        job.status = JobStatus.Expired;
        emit JobExpired(jobId, j.payer, j.maxCredits);
        credit.mint(j.payer, j.maxCredits);
    }

    /// @inheritdoc IJobEscrow
    function debitEarnings(address operator, uint256 credits) external {
        if (msg.sender != address(bme)) revert JobEscrowNotBme(msg.sender);
        uint256 earned = _earnings[operator];
        if (earned < credits) revert JobEscrowInsufficientEarnings(operator, earned, credits);
        unchecked {
            // Cannot underflow: checked just above.
            _earnings[operator] = earned - credits;
        }
        emit EarningsRedeemed(operator, credits);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IJobEscrow
    function setMaxJobDuration(uint32 maxJobDuration_) external onlyRole(GOVERNOR_ROLE) {
        if (maxJobDuration_ == 0) revert JobEscrowInvalidDeadline(0, 0);
        _maxJobDuration = maxJobDuration_;
        emit MaxJobDurationUpdated(maxJobDuration_);
    }

    /// @notice Stops the opening of jobs for at most `MAX_PAUSE`, after which it resumes by itself; settlements and
    /// refunds go on. A new pause may start only `PAUSE_COOLDOWN` after the last one ended. Only callable by the
    /// guardian.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pauseExpiring();
    }

    /// @notice Ends the current pause early. Only callable by governance.
    function unpause() external onlyRole(GOVERNOR_ROLE) {
        _unpauseEarly();
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IJobEscrow
    function jobIdFor(address payer, bytes32 specHash) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(payer, specHash)));
    }

    /// @inheritdoc IJobEscrow
    function jobOf(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @inheritdoc IJobEscrow
    function earningsOf(address operator) external view returns (uint256) {
        return _earnings[operator];
    }

    /// @inheritdoc IJobEscrow
    function maxJobDuration() external view returns (uint32) {
        return _maxJobDuration;
    }

    /// @inheritdoc IJobEscrow
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - epochGenesis) / epochLength;
    }

    /// @inheritdoc IJobEscrow
    function workOf(address operator, uint256 epoch) external view returns (uint256) {
        return _unpacked(_work[operator][epoch >> 1], epoch);
    }

    /// @inheritdoc IJobEscrow
    function epochWork(uint256 epoch) external view returns (uint256) {
        return _unpacked(_epochWork[epoch >> 1], epoch);
    }

    /// @inheritdoc IJobEscrow
    function workRange(address operator, uint256 fromEpoch, uint256 toEpoch)
        external
        view
        returns (uint256[] memory operatorWork, uint256[] memory totalWork)
    {
        if (toEpoch < fromEpoch) revert JobEscrowInvalidEpochRange(fromEpoch, toEpoch);
        uint256 n = toEpoch - fromEpoch + 1;
        operatorWork = new uint256[](n);
        totalWork = new uint256[](n);
        uint256 opSlot;
        uint256 totalSlot;
        for (uint256 i; i < n; ++i) {
            uint256 e = fromEpoch + i;
            // A slot holds two epochs: read it when entering a pair (or at the first epoch).
            if (i == 0 || e & 1 == 0) {
                opSlot = _work[operator][e >> 1];
                totalSlot = _epochWork[e >> 1];
            }
            operatorWork[i] = _unpacked(opSlot, e);
            totalWork[i] = _unpacked(totalSlot, e);
        }
    }
}
