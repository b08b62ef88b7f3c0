// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IEmissionSchedule
/// @notice The fixed emission schedule and operators' reward claims (AEP-79: hard-capped emission segments; Helium:
/// issuance through the mint circuit breaker; Livepeer and Akash: inflation to bonded stake, fees to work).
///
/// Epochs are the job escrow's. Epoch `e` emits `epochEmission(e)` CMP, from up to four consecutive segments fixed
/// at deployment: `amountPerEpoch` for `epochs` epochs (zero: forever, last segment only), decaying by `decayBps`
/// every `decayPeriod` epochs of the segment. The deployment refuses segments whose total could exceed the immutable
/// `hardCap`, so no later call can lift the cap; emission is also counted against it when minted.
///
/// An epoch's emission is shared among operators pro-rata to their reward weight in it (the operator registry's
/// `rewardWeights`: rewardable stake held through the whole epoch, bonded and not jailed), over the epoch's total
/// rewardable stake, each share rounded down; an epoch with no rewardable stake emits nothing. Work is paid by fees
/// alone (earnings redeemed for CMP), so paying for one's own jobs earns no emission. Rewards of epoch `e` may be
/// claimed once `claimDelayEpochs` more epochs have ended (the challenge window), so that a slash can reach them: a
/// slash forfeits the slashed operator's unclaimed rewards of every epoch up to and including the slash's. Rewards
/// are minted at claim through the BME core's `mintEmission` (counted against the rolling mint window), so a
/// forfeited or unallocated share is never minted. An operator claims all its claimable epochs in one call, from the
/// epoch after its last claim, or for a first claim from the epoch it first registered in.
interface IEmissionSchedule {
    /// @notice One phase of the schedule, as given at deployment.
    /// @param epochs Its length in epochs; zero for an endless last segment.
    /// @param amountPerEpoch CMP per epoch at its start.
    /// @param decayBps The share by which the amount falls every `decayPeriod` epochs (0: constant).
    /// @param decayPeriod Epochs between decays (needed when `decayBps` is not zero).
    struct Segment {
        uint48 epochs;
        uint96 amountPerEpoch;
        uint16 decayBps;
        uint32 decayPeriod;
    }

    /// @notice `operator` claimed `tokens` CMP of rewards for epochs `fromEpoch` to `toEpoch` inclusive.
    event RewardsClaimed(address indexed operator, uint256 fromEpoch, uint256 toEpoch, uint256 tokens);

    /// @notice Segment `index` is malformed (decay of 100 % or more, decay without a period, an endless segment
    /// that is not the last, too many or no segments).
    error EmissionScheduleInvalidSegment(uint256 index);
    /// @notice The schedule could emit up to `bound` CMP, above the hard cap `cap`.
    error EmissionScheduleExceedsCap(uint256 bound, uint256 cap);
    /// @notice Epoch `epoch` has not ended: the current epoch is `currentEpoch`.
    error EmissionScheduleEpochNotEnded(uint256 epoch, uint256 currentEpoch);
    /// @notice `operator` already claimed through epoch `epoch`: its next claim starts at `nextEpoch`.
    error EmissionScheduleAlreadyClaimed(address operator, uint256 epoch, uint256 nextEpoch);
    /// @notice `operator` has no rewards in epochs `fromEpoch` to `toEpoch`.
    error EmissionScheduleNothingToClaim(address operator, uint256 fromEpoch, uint256 toEpoch);
    /// @notice Epoch `epoch` is in its challenge window: its rewards may be claimed from epoch `claimableFromEpoch`.
    error EmissionScheduleInChallengeWindow(uint256 epoch, uint256 claimableFromEpoch);
    /// @notice A challenge window of `claimDelayEpochs` epochs is longer than the most allowed.
    error EmissionScheduleInvalidClaimDelay(uint256 claimDelayEpochs);

    /// @notice Claims the caller's rewards for all its unclaimed epochs past the challenge window (through
    /// `currentEpoch() - 1 - claimDelayEpochs`), minting them to the caller. Reverts with the BME core's
    /// `BmeRateLimited` when they exceed the mint window.
    /// @return tokens CMP minted to the caller.
    function claim() external returns (uint256 tokens);

    /// @notice Claims the caller's rewards for its unclaimed epochs up to `toEpoch` inclusive, which must be past
    /// the challenge window (to bound the gas of a claim after a long pause).
    /// @return tokens CMP minted to the caller.
    function claimThrough(uint256 toEpoch) external returns (uint256 tokens);

    /// @notice The immutable cap on all emission, in CMP base units.
    function hardCap() external view returns (uint256);

    /// @notice The most the segments can ever emit (at most `hardCap`).
    function scheduleBound() external view returns (uint256);

    /// @notice The segments, as given at deployment.
    function segments() external view returns (Segment[] memory);

    /// @notice CMP that epoch `epoch` emits when any stake is rewardable in it.
    function epochEmission(uint256 epoch) external view returns (uint256);

    /// @notice The largest emission of any epoch (the first epoch of the largest segment).
    function maxEpochEmission() external view returns (uint256);

    /// @notice The epoch that contains the current block's time (the escrow's clock).
    function currentEpoch() external view returns (uint256);

    /// @notice The challenge window: an epoch's rewards may be claimed once this many more epochs have ended.
    function claimDelayEpochs() external view returns (uint256);

    /// @notice CMP minted by the schedule in all (to operators, at their claims).
    function totalReleased() external view returns (uint256);

    /// @notice The epoch `operator`'s next claim starts at (zero before its first claim) and all it has claimed.
    function claimerOf(address operator) external view returns (uint256 nextEpoch, uint256 claimed);

    /// @notice What `operator` could claim now: its unclaimed epochs past the challenge window and their rewards.
    function pendingRewards(address operator)
        external
        view
        returns (uint256 fromEpoch, uint256 toEpoch, uint256 tokens);
}
