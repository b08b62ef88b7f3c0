// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IJobEscrow, JobStatus} from "./interfaces/IJobEscrow.sol";
import {IBurnMintEquilibrium} from "./interfaces/IBurnMintEquilibrium.sol";
import {IComputeCredit} from "./interfaces/IComputeCredit.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";
import {ModelPriceBook} from "./ModelPriceBook.sol";
import {ExpiringPausable} from "./utils/ExpiringPausable.sol";

/// @title JobEscrow
/// @notice Reserves credits for inference jobs and settles them. Credits reserved for open jobs and operators'
/// earnings are held in this contract's accounting: the escrow burns a payer's CRD when a job is opened from a
/// balance, and mints CRD back to the payer for a refund. See `IJobEscrow` and `contracts/INVARIANTS.md`.
/// @dev Calls out only to the protocol's own BME core, CMP, CRD and operator registry (a view), none of which calls
/// back.
contract JobEscrow is IJobEscrow, ModelPriceBook, ExpiringPausable {
    /// @notice The relayer(s) allowed to settle jobs.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @notice The guardian that may pause the opening of jobs at once, for at most `MAX_PAUSE`.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice This project's default: a job must be settled within a day or it may be refunded.
    uint32 public constant DEFAULT_MAX_JOB_DURATION = 1 days;
    /// @notice This project's default: a job's deadline is at least 10 minutes after its opening, so that a payer
    /// cannot read its answer and expire the job for a full refund before the relayer's next settlement batch.
    uint32 public constant DEFAULT_MIN_JOB_DURATION = 10 minutes;
    /// @notice Akash AEP-79's bounds on the epoch length.
    uint256 public constant MIN_EPOCH_LENGTH = 65;
    uint256 public constant MAX_EPOCH_LENGTH = 93_600;
    uint256 private constant HALF = 128;
    uint256 private constant LOW = type(uint128).max;

    IBurnMintEquilibrium public immutable bme;
    IComputeCredit public immutable credit;
    IERC20Permit public immutable token;
    /// @inheritdoc IJobEscrow
    IOperatorRegistry public immutable registry;
    /// @inheritdoc IJobEscrow
    uint256 public immutable epochGenesis;
    /// @inheritdoc IJobEscrow
    uint256 public immutable epochLength;

    /// @dev Declared first so that they share a slot with Pausable's flag: all three are read by every job opening.
    uint32 private _maxJobDuration;
    uint32 private _minJobDuration;
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
    /// @param registry_ The operator registry (deployed next, its address precomputed: its constructor checks that
    /// this escrow names it).
    /// @param governor The timelock.
    /// @param guardian The account that may pause.
    /// @param epochLength_ Seconds per epoch; epoch 0 starts at deployment.
    constructor(
        IBurnMintEquilibrium bme_,
        IComputeCredit credit_,
        IERC20Permit token_,
        IOperatorRegistry registry_,
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
        registry = registry_;
        epochGenesis = block.timestamp;
        epochLength = epochLength_;
        _maxJobDuration = DEFAULT_MAX_JOB_DURATION;
        _minJobDuration = DEFAULT_MIN_JOB_DURATION;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(GOVERNOR_ROLE, governor);
        _grantRole(PAUSER_ROLE, guardian);
    }

    // ---------------------------------------------------------------- opening

    /// @inheritdoc IJobEscrow
    function openJob(uint256 maxCredits, JobTerms calldata terms) external whenNotPaused returns (uint256 jobId) {
        if (maxCredits == 0) revert JobEscrowZeroAmount();
        jobId = _checkNewJob(msg.sender, terms);
        _storeJob(jobId, msg.sender, maxCredits, 0, terms);
        credit.burnFrom(msg.sender, maxCredits);
    }

    /// @inheritdoc IJobEscrow
    function burnForJob(uint256 tokens, uint256 minCredits, JobTerms calldata terms)
        external
        whenNotPaused
        returns (uint256 jobId, uint256 credits)
    {
        return _burnForJob(tokens, minCredits, terms);
    }

    /// @inheritdoc IJobEscrow
    function burnForJobWithPermit(
        uint256 tokens,
        uint256 minCredits,
        JobTerms calldata terms,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused returns (uint256 jobId, uint256 credits) {
        // A permit front-run by someone else has already set the allowance; the burn then proceeds, or fails
        // with the token's own allowance error if it did not (OpenZeppelin's recommended pattern).
        try token.permit(msg.sender, address(bme), tokens, permitDeadline, v, r, s) {} catch {}
        return _burnForJob(tokens, minCredits, terms);
    }

    // slither-disable-next-line reentrancy-no-eth -- the BME core is the protocol's own contract and makes no call back
    function _burnForJob(uint256 tokens, uint256 minCredits, JobTerms calldata terms)
        private
        returns (uint256 jobId, uint256 credits)
    {
        jobId = _checkNewJob(msg.sender, terms);
        // The credits are known only after the burn; the BME core is a protocol contract that makes no call back.
        credits = bme.burnForEscrow(msg.sender, tokens, minCredits);
        _storeJob(jobId, msg.sender, credits, tokens, terms);
    }

    function _checkNewJob(address payer, JobTerms calldata terms) private view returns (uint256 jobId) {
        jobId = jobIdFor(payer, terms.specHash);
        if (_jobs[jobId].status != JobStatus.None) revert JobEscrowJobExists(jobId);
        if (!_isListed(terms.modelId)) revert JobEscrowModelNotListed(terms.modelId);
        uint256 earliest = block.timestamp + _minJobDuration;
        uint256 latest = block.timestamp + _maxJobDuration;
        uint256 deadline = terms.deadline;
        if (deadline < earliest || deadline > latest) revert JobEscrowInvalidDeadline(deadline, earliest, latest);
        if (terms.maxInputTokens == 0 || terms.maxOutputTokens == 0) {
            revert JobEscrowZeroUsageCap(terms.maxInputTokens, terms.maxOutputTokens);
        }
    }

    function _storeJob(uint256 jobId, address payer, uint256 maxCredits, uint256 tokensBurned, JobTerms calldata t)
        private
    {
        if (maxCredits > type(uint40).max) revert JobEscrowMaxCreditsTooLarge(maxCredits);
        _jobs[jobId] = Job(
            payer, t.modelId, t.deadline, uint40(maxCredits), JobStatus.Open, t.maxInputTokens, t.maxOutputTokens
        );
        emit JobOpened(
            jobId,
            payer,
            t.modelId,
            maxCredits,
            tokensBurned,
            t.deadline,
            t.specHash,
            t.maxInputTokens,
            t.maxOutputTokens
        );
    }

    // ---------------------------------------------------------------- closing

    /// @inheritdoc IJobEscrow
    /// @dev An operator's charges are summed over each run of consecutive settlements it served and written once
    /// per run, to its earnings and to its work in the current epoch. The registry is asked once per run (and
    /// again only when a job's model falls in another 256-id word of the operator's model bitmap).
    // slither-disable-next-line reentrancy-no-eth -- the refund's mint is CRD's, the protocol's own token: no hook, no call back
    function settle(Settlement[] calldata settlements) external onlyRole(RELAYER_ROLE) {
        uint256 epoch = currentEpoch();
        uint256 n = settlements.length;
        address runOperator = address(0);
        uint256 runCredits = 0;
        uint256 batchCredits = 0;
        // The registry's answer for the run's operator: the bitmap word's index plus one (zero: none read yet)
        // and the bitmap itself.
        uint256 runWord = 0;
        uint256 runModels = 0;
        for (uint256 i; i < n; ++i) {
            Settlement calldata s = settlements[i];
            Job storage job = _jobs[s.jobId];
            Job memory j = job;
            if (j.status != JobStatus.Open) revert JobEscrowJobNotOpen(s.jobId, j.status);
            if (block.timestamp > j.deadline) revert JobEscrowDeadlinePassed(s.jobId, j.deadline);
            if (s.operator == address(0)) revert JobEscrowZeroOperator(s.jobId);
            if (s.inputTokens > j.maxInputTokens || s.outputTokens > j.maxOutputTokens) {
                revert JobEscrowUsageAboveCaps(
                    s.jobId, s.inputTokens, s.outputTokens, j.maxInputTokens, j.maxOutputTokens
                );
            }
            if (s.operator != runOperator) {
                _recordWork(runOperator, epoch, runCredits);
                (runOperator, runCredits, runWord) = (s.operator, 0, 0);
            }
            if (runWord != (uint256(j.modelId) >> 8) + 1) {
                (runWord, runModels) = _eligibleModels(s.jobId, s.operator, j.modelId);
            }
            if ((runModels >> (j.modelId & 255)) & 1 == 0) {
                revert JobEscrowOperatorNotServingModel(s.jobId, s.operator, j.modelId);
            }

            uint256 cost = costOf(j.modelId, s.inputTokens, s.outputTokens);
            uint256 charge = cost < j.maxCredits ? cost : j.maxCredits;
            uint256 refund = j.maxCredits - charge;
            job.status = JobStatus.Settled;
            runCredits += charge;
            batchCredits += charge;
            emit JobSettled(s.jobId, s.operator, s.inputTokens, s.outputTokens, charge, refund, s.resultHash);
            if (refund != 0) credit.mint(j.payer, refund);
        }
        _recordWork(runOperator, epoch, runCredits);
        if (batchCredits != 0) _epochWork[epoch >> 1] = _addPacked(_epochWork[epoch >> 1], epoch, batchCredits);
    }

    /// @dev Asks the registry whether `operator` is active (reverting for job `jobId` when it is not) and which
    /// models it lists in the bitmap word of `modelId`; returns that word's index plus one, and the bitmap.
    function _eligibleModels(uint256 jobId, address operator, uint16 modelId)
        private
        view
        returns (uint256 word, uint256 models)
    {
        word = uint256(modelId) >> 8;
        bool active;
        (active, models) = registry.eligibility(operator, word);
        if (!active) revert JobEscrowOperatorNotActive(jobId, operator);
        ++word;
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
        uint32 minimum = _minJobDuration;
        if (maxJobDuration_ <= minimum) revert JobEscrowInvalidJobDurations(minimum, maxJobDuration_);
        _maxJobDuration = maxJobDuration_;
        emit MaxJobDurationUpdated(maxJobDuration_);
    }

    /// @inheritdoc IJobEscrow
    function setMinJobDuration(uint32 minJobDuration_) external onlyRole(GOVERNOR_ROLE) {
        uint32 maximum = _maxJobDuration;
        if (minJobDuration_ == 0 || minJobDuration_ >= maximum) {
            revert JobEscrowInvalidJobDurations(minJobDuration_, maximum);
        }
        _minJobDuration = minJobDuration_;
        emit MinJobDurationUpdated(minJobDuration_);
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
    function minJobDuration() external view returns (uint32) {
        return _minJobDuration;
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
        uint256 opSlot = 0;
        uint256 totalSlot = 0;
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
