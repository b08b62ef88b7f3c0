// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorRegistry} from "./IOperatorRegistry.sol";

/// @notice Where a job is in its life. Open: credits reserved. Settled: charged and refunded. Expired: refunded.
enum JobStatus {
    None,
    Open,
    Settled,
    Expired
}

/// @title IJobEscrow
/// @notice Reserves credits for inference jobs, settles them in batches from token counts and the model price book,
/// credits operators' earnings, and refunds payers. A job's id is `keccak256(abi.encode(payer, specHash))`, so a
/// payer knows it before paying and can reveal the request to the relayer first. Prompts never go on-chain: a job
/// carries only `specHash`, the payer's commitment to the request.
interface IJobEscrow {
    /// @notice One job's settlement, as the relayer submits it.
    /// @param jobId The job.
    /// @param operator The operator that served it; its earnings receive the charge.
    /// @param inputTokens Prompt tokens, counted by the model's tokenizer.
    /// @param outputTokens Completion tokens.
    /// @param resultHash keccak256 of the answer the payer received.
    struct Settlement {
        uint256 jobId;
        address operator;
        uint32 inputTokens;
        uint32 outputTokens;
        bytes32 resultHash;
    }

    /// @notice What a payer commits to when it opens a job.
    /// @param modelId A listed model.
    /// @param specHash The payer's commitment to the request (see the relayer's API for its encoding).
    /// @param deadline Unix time by which the job must be settled; after it the payer may expire it. At least
    /// `minJobDuration` and at most `maxJobDuration` seconds away.
    /// @param maxInputTokens The most prompt tokens a settlement may charge for; not zero.
    /// @param maxOutputTokens The most completion tokens a settlement may charge for (the request's
    /// `max_tokens`); not zero.
    struct JobTerms {
        uint16 modelId;
        bytes32 specHash;
        uint32 deadline;
        uint32 maxInputTokens;
        uint32 maxOutputTokens;
    }

    /// @notice The stored state of a job: two storage slots (the payer's usage caps in the second).
    struct Job {
        address payer;
        uint16 modelId;
        uint32 deadline;
        uint40 maxCredits;
        JobStatus status;
        uint32 maxInputTokens;
        uint32 maxOutputTokens;
    }

    /// @notice `payer` reserved `maxCredits` for job `jobId` on model `modelId`, to be served by `deadline`, for
    /// at most `maxInputTokens` prompt and `maxOutputTokens` completion tokens. `tokensBurned` CMP were burned for
    /// it in the same transaction (zero when paid from a credit balance).
    event JobOpened(
        uint256 indexed jobId,
        address indexed payer,
        uint16 indexed modelId,
        uint256 maxCredits,
        uint256 tokensBurned,
        uint32 deadline,
        bytes32 specHash,
        uint32 maxInputTokens,
        uint32 maxOutputTokens
    );
    /// @notice Job `jobId` was served by `operator`: `charge` credits went to its earnings, `refund` to the payer.
    event JobSettled(
        uint256 indexed jobId,
        address indexed operator,
        uint32 inputTokens,
        uint32 outputTokens,
        uint256 charge,
        uint256 refund,
        bytes32 resultHash
    );
    /// @notice Job `jobId` passed its deadline unsettled; its `refund` credits went back to `payer`.
    event JobExpired(uint256 indexed jobId, address indexed payer, uint256 refund);
    /// @notice `credits` of `operator`'s earnings were redeemed through the BME core.
    event EarningsRedeemed(address indexed operator, uint256 credits);
    /// @notice Governance changed the longest time a job may stay open.
    event MaxJobDurationUpdated(uint32 maxJobDuration);
    /// @notice Governance changed the shortest time a job must stay open.
    event MinJobDurationUpdated(uint32 minJobDuration);
    /// @notice `operator` was credited `credits` of settled work in `epoch` (the basis of emission rewards).
    event WorkRecorded(address indexed operator, uint256 indexed epoch, uint256 credits);

    /// @notice An amount of zero was given.
    error JobEscrowZeroAmount();
    /// @notice The payer already has a job with this id (the same `specHash`).
    error JobEscrowJobExists(uint256 jobId);
    /// @notice Job `jobId` is `status`, not Open: unknown, already settled or already expired.
    error JobEscrowJobNotOpen(uint256 jobId, JobStatus status);
    /// @notice Job `jobId` can be expired only after its deadline `deadline`.
    error JobEscrowDeadlineNotReached(uint256 jobId, uint256 deadline);
    /// @notice Job `jobId` passed its deadline `deadline`: it can only be expired now.
    error JobEscrowDeadlinePassed(uint256 jobId, uint256 deadline);
    /// @notice A deadline must be from `earliest` (`minJobDuration` seconds away) to `latest` (`maxJobDuration`).
    error JobEscrowInvalidDeadline(uint256 deadline, uint256 earliest, uint256 latest);
    /// @notice The shortest job duration must be above zero and below the longest.
    error JobEscrowInvalidJobDurations(uint256 minJobDuration, uint256 maxJobDuration);
    /// @notice A job's usage caps must both be above zero.
    error JobEscrowZeroUsageCap(uint32 maxInputTokens, uint32 maxOutputTokens);
    /// @notice A settlement of job `jobId` counted more tokens than the payer's caps allow.
    error JobEscrowUsageAboveCaps(
        uint256 jobId, uint32 inputTokens, uint32 outputTokens, uint32 maxInputTokens, uint32 maxOutputTokens
    );
    /// @notice A settlement of job `jobId` named `operator`, which is not active in the operator registry
    /// (never registered, withdrawn, unbonding, jailed, or staking below the minimum).
    error JobEscrowOperatorNotActive(uint256 jobId, address operator);
    /// @notice A settlement of job `jobId` named `operator`, which does not list the job's model `modelId`.
    error JobEscrowOperatorNotServingModel(uint256 jobId, address operator, uint16 modelId);
    /// @notice A job may reserve at most `type(uint40).max` credit units ($1.09 million).
    error JobEscrowMaxCreditsTooLarge(uint256 maxCredits);
    /// @notice The model is not listed in the price book.
    error JobEscrowModelNotListed(uint16 modelId);
    /// @notice A settlement named the zero address as operator.
    error JobEscrowZeroOperator(uint256 jobId);
    /// @notice `operator` has `earnings` credits, fewer than the `requested` redemption.
    error JobEscrowInsufficientEarnings(address operator, uint256 earnings, uint256 requested);
    /// @notice Only the BME core may call this.
    error JobEscrowNotBme(address caller);
    /// @notice An epoch must last from 65 s to 93,600 s (Akash AEP-79).
    error JobEscrowInvalidEpochLength(uint256 epochLength);
    /// @notice An epoch range must not be reversed.
    error JobEscrowInvalidEpochRange(uint256 fromEpoch, uint256 toEpoch);

    /// @notice Opens a job paid from the caller's CRD balance.
    /// @param maxCredits Credits to reserve: the most the job may cost.
    /// @param terms The model, the request's commitment, the deadline and the usage caps (see {JobTerms}).
    /// @return jobId The job's id.
    function openJob(uint256 maxCredits, JobTerms calldata terms) external returns (uint256 jobId);

    /// @notice Burns CMP for credits and opens a job reserving all of them, in one transaction.
    /// @param tokens CMP to burn; the caller must have approved the BME core for them.
    /// @param minCredits The fewest credits the caller accepts for the tokens (slippage bound); they become the
    /// job's maximum cost.
    /// @param terms The model, the request's commitment, the deadline and the usage caps (see {JobTerms}).
    /// @return jobId The job's id.
    /// @return credits Credits reserved for the job.
    function burnForJob(uint256 tokens, uint256 minCredits, JobTerms calldata terms)
        external
        returns (uint256 jobId, uint256 credits);

    /// @notice {burnForJob} with an EIP-2612 permit for the BME core, so the wallet needs no separate approval.
    /// @dev A permit already used (for example by a front-runner) is ignored when the allowance suffices.
    function burnForJobWithPermit(
        uint256 tokens,
        uint256 minCredits,
        JobTerms calldata terms,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 jobId, uint256 credits);

    /// @notice Settles a batch of jobs. Only callable by the relayer (`RELAYER_ROLE`).
    /// @dev Each job's charge is computed from the price book and capped by its reservation; the rest is refunded.
    /// Reverts as a whole if any job is not open or past its deadline, if a settlement counts more tokens than
    /// the job's caps, or if its operator is not active in the registry or does not list the job's model.
    function settle(Settlement[] calldata settlements) external;

    /// @notice Refunds job `jobId` in full to its payer once its deadline has passed. Callable by anyone.
    function expire(uint256 jobId) external;

    /// @notice Takes `credits` from `operator`'s earnings for a redemption. Only callable by the BME core.
    function debitEarnings(address operator, uint256 credits) external;

    /// @notice Changes the longest time a job may stay open; it must stay above `minJobDuration`. Only callable
    /// by governance.
    function setMaxJobDuration(uint32 maxJobDuration) external;

    /// @notice Changes the shortest time a job must stay open (from its opening to its deadline); it must be above
    /// zero and below `maxJobDuration`. Only callable by governance.
    function setMinJobDuration(uint32 minJobDuration) external;

    /// @notice The id of `payer`'s job with commitment `specHash`.
    function jobIdFor(address payer, bytes32 specHash) external pure returns (uint256);

    /// @notice The stored state of job `jobId`.
    function jobOf(uint256 jobId) external view returns (Job memory);

    /// @notice Credits `operator` has earned and not yet redeemed.
    function earningsOf(address operator) external view returns (uint256);

    /// @notice The longest time, in seconds, a job may stay open.
    function maxJobDuration() external view returns (uint32);

    /// @notice The shortest time, in seconds, from a job's opening to its deadline: a payer cannot read an answer
    /// and expire its job for a full refund before the relayer had that long to settle it.
    function minJobDuration() external view returns (uint32);

    /// @notice The operator registry that a settlement's operator must be active in.
    function registry() external view returns (IOperatorRegistry);

    /// @notice The start of epoch 0 (unix seconds).
    function epochGenesis() external view returns (uint256);

    /// @notice The length of an epoch in seconds.
    function epochLength() external view returns (uint256);

    /// @notice The epoch that contains the current block's time.
    function currentEpoch() external view returns (uint256);

    /// @notice Credits of work settled for `operator` in `epoch`.
    function workOf(address operator, uint256 epoch) external view returns (uint256);

    /// @notice Credits of work settled for all operators in `epoch`.
    function epochWork(uint256 epoch) external view returns (uint256);

    /// @notice `operator`'s work and every operator's work for each epoch from `fromEpoch` to `toEpoch` inclusive,
    /// in one call (what a reward claim reads).
    function workRange(address operator, uint256 fromEpoch, uint256 toEpoch)
        external
        view
        returns (uint256[] memory operatorWork, uint256[] memory totalWork);
}
