// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEmissionSchedule} from "./interfaces/IEmissionSchedule.sol";
import {IJobEscrow} from "./interfaces/IJobEscrow.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";
import {IBurnMintEquilibrium} from "./interfaces/IBurnMintEquilibrium.sol";
import {IComputeToken} from "./interfaces/IComputeToken.sol";
import {EmissionMath} from "./libraries/EmissionMath.sol";

/// @title EmissionSchedule
/// @notice The fixed, hard-capped emission schedule and operators' reward claims. See `IEmissionSchedule` and
/// `contracts/INVARIANTS.md` (invariant 7).
/// @dev No admin: the segments, the cap and the challenge window are immutable. Rewards are minted at claim, through
/// the BME core, so a share nobody can claim (forfeited by a slash, or of an epoch without rewardable stake) is never
/// minted. A claim reads the claimer's slot here, the registry's stake checkpoints (one call) and mints once. Calls
/// out only to the protocol's own registry and BME core, neither of which calls back.
contract EmissionSchedule is IEmissionSchedule {
    uint256 public constant MAX_SEGMENTS = 4;
    /// @notice The longest challenge window a deployment may choose: a year of daily epochs.
    uint256 public constant MAX_CLAIM_DELAY_EPOCHS = 365;
    uint256 private constant FOREVER = type(uint48).max;

    /// @dev A claimer's state: one slot.
    struct Claimer {
        uint64 nextEpoch;
        uint192 claimed;
    }

    IJobEscrow public immutable escrow;
    IOperatorRegistry public immutable registry;
    IBurnMintEquilibrium public immutable bme;
    IComputeToken public immutable token;
    /// @inheritdoc IEmissionSchedule
    uint256 public immutable hardCap;
    /// @inheritdoc IEmissionSchedule
    uint256 public immutable scheduleBound;
    /// @inheritdoc IEmissionSchedule
    uint256 public immutable maxEpochEmission;
    /// @inheritdoc IEmissionSchedule
    uint256 public immutable claimDelayEpochs;
    uint256 private immutable _epochGenesis;
    uint256 private immutable _epochLength;
    uint256 private immutable _segmentCount;
    /// @dev Segments packed as amount (96 bits) | start epoch (48) | end epoch (48, FOREVER when endless) |
    /// decay bps (16) | decay period (32), so reading the schedule costs no storage.
    uint256 private immutable _seg0;
    uint256 private immutable _seg1;
    uint256 private immutable _seg2;
    uint256 private immutable _seg3;

    uint256 private _totalMinted;
    mapping(address operator => Claimer) private _claimers;

    /// @param escrow_ The job escrow: the epoch clock.
    /// @param registry_ The operator registry: where a first claim starts, the stake checkpoints and slashes.
    /// @param bme_ The BME core; this contract needs its `EMITTER_ROLE`.
    /// @param token_ CMP.
    /// @param hardCap_ The cap on all emission, immutable.
    /// @param segments_ One to four segments; see {IEmissionSchedule-Segment}.
    /// @param claimDelayEpochs_ The challenge window: epochs that must end after an epoch before its rewards may be
    /// claimed (at most `MAX_CLAIM_DELAY_EPOCHS`).
    constructor(
        IJobEscrow escrow_,
        IOperatorRegistry registry_,
        IBurnMintEquilibrium bme_,
        IComputeToken token_,
        uint256 hardCap_,
        Segment[] memory segments_,
        uint256 claimDelayEpochs_
    ) {
        uint256 n = segments_.length;
        if (n == 0 || n > MAX_SEGMENTS) revert EmissionScheduleInvalidSegment(n);
        if (claimDelayEpochs_ > MAX_CLAIM_DELAY_EPOCHS) revert EmissionScheduleInvalidClaimDelay(claimDelayEpochs_);
        // slither-disable-next-line uninitialized-local -- a memory array starts zeroed: unused segments stay 0
        uint256[MAX_SEGMENTS] memory packed;
        uint256 start = 0;
        uint256 bound = 0;
        uint256 maxAmount = 0;
        for (uint256 i; i < n; ++i) {
            Segment memory s = segments_[i];
            bool endless = s.epochs == 0;
            if (
                s.decayBps >= EmissionMath.BPS || (s.decayBps != 0 && s.decayPeriod == 0) || (endless && i != n - 1)
            ) revert EmissionScheduleInvalidSegment(i);
            uint256 end = endless ? FOREVER : start + s.epochs;
            if (end > FOREVER) revert EmissionScheduleInvalidSegment(i);
            packed[i] = uint256(s.amountPerEpoch) | (start << 96) | (end << 144) | (uint256(s.decayBps) << 192)
                | (uint256(s.decayPeriod) << 208);
            uint256 segmentBound = EmissionMath.segmentBoundUp(s.amountPerEpoch, s.epochs, s.decayBps, s.decayPeriod);
            bound = segmentBound > type(uint256).max - bound ? type(uint256).max : bound + segmentBound;
            if (s.amountPerEpoch > maxAmount) maxAmount = s.amountPerEpoch;
            start = end;
        }
        if (bound > hardCap_) revert EmissionScheduleExceedsCap(bound, hardCap_);
        escrow = escrow_;
        registry = registry_;
        bme = bme_;
        token = token_;
        hardCap = hardCap_;
        scheduleBound = bound;
        maxEpochEmission = maxAmount;
        claimDelayEpochs = claimDelayEpochs_;
        _epochGenesis = escrow_.epochGenesis();
        _epochLength = escrow_.epochLength();
        _segmentCount = n;
        (_seg0, _seg1, _seg2, _seg3) = (packed[0], packed[1], packed[2], packed[3]);
    }

    // ---------------------------------------------------------------- claims

    /// @inheritdoc IEmissionSchedule
    function claim() external returns (uint256 tokens) {
        uint256 current = currentEpoch();
        uint256 delay = claimDelayEpochs;
        if (current <= delay) revert EmissionScheduleInChallengeWindow(0, delay + 1);
        unchecked {
            // Cannot underflow: checked just above.
            return _claim(current - 1 - delay, current);
        }
    }

    /// @inheritdoc IEmissionSchedule
    function claimThrough(uint256 toEpoch) external returns (uint256 tokens) {
        return _claim(toEpoch, currentEpoch());
    }

    function _claim(uint256 toEpoch, uint256 current) private returns (uint256 tokens) {
        if (toEpoch >= current) revert EmissionScheduleEpochNotEnded(toEpoch, current);
        uint256 claimableAt = toEpoch + claimDelayEpochs + 1;
        if (claimableAt > current) revert EmissionScheduleInChallengeWindow(toEpoch, claimableAt);
        Claimer memory c = _claimers[msg.sender];
        uint256 from = c.nextEpoch != 0 ? c.nextEpoch : registry.firstEpochOf(msg.sender);
        if (toEpoch < from) {
            if (c.nextEpoch != 0) revert EmissionScheduleAlreadyClaimed(msg.sender, toEpoch, from);
            revert EmissionScheduleNothingToClaim(msg.sender, from, toEpoch);
        }
        tokens = _rewards(msg.sender, from, toEpoch);
        if (tokens == 0) revert EmissionScheduleNothingToClaim(msg.sender, from, toEpoch);
        uint256 total = _totalMinted + tokens;
        // Holds by construction (an epoch's claims are at most its emission, and the segments' bound is at most
        // the cap); checked again on the cumulative total minted.
        if (total > hardCap) revert EmissionScheduleExceedsCap(total, hardCap);
        _totalMinted = total;
        // Both fit: epochs fit 48 bits, and an operator's claims are at most the cap.
        _claimers[msg.sender] = Claimer(uint64(toEpoch + 1), uint192(c.claimed + tokens));
        emit RewardsClaimed(msg.sender, from, toEpoch, tokens);

        bme.mintEmission(msg.sender, tokens);
    }

    /// @dev `operator`'s rewards for epochs `from` to `to` inclusive: each epoch's emission times its reward weight
    /// over the epoch's total rewardable stake, rounded down.
    function _rewards(address operator, uint256 from, uint256 to) private view returns (uint256 tokens) {
        (uint256[] memory weights, uint256[] memory totals) = registry.rewardWeights(operator, from, to);
        uint256 until = 0; // the first epoch whose emission is not `emission`: none read yet
        uint256 emission = 0;
        uint256 n = weights.length;
        // Unchecked: i < n, epochs fit 48 bits, and the rewards sum to at most the emission of n epochs (< 2^160).
        unchecked {
            for (uint256 i; i < n; ++i) {
                uint256 w = weights[i];
                // slither-disable-next-line incorrect-equality -- a weight of zero earns nothing: skip the epoch
                if (w == 0) continue;
                if (from + i >= until) (emission, until) = _emissionAt(from + i);
                tokens += EmissionMath.rewardDown(emission, w, totals[i]);
            }
        }
    }

    // ---------------------------------------------------------------- schedule

    /// @dev Epoch `epoch`'s emission, and the first later epoch whose emission may differ.
    function _emissionAt(uint256 epoch) private view returns (uint256 emission, uint256 until) {
        uint256 n = _segmentCount;
        for (uint256 i; i < n; ++i) {
            uint256 s = _segment(i);
            uint256 end = uint48(s >> 144);
            if (epoch >= end) continue;
            uint256 amount = uint96(s);
            uint256 decayBps = uint16(s >> 192);
            if (decayBps == 0) return (amount, end);
            uint256 start = uint48(s >> 96);
            uint256 period = uint32(s >> 208);
            uint256 periods = (epoch - start) / period;
            uint256 next = start + (periods + 1) * period;
            return (EmissionMath.decayedDown(amount, decayBps, periods), next < end ? next : end);
        }
        return (0, type(uint256).max);
    }

    function _segment(uint256 i) private view returns (uint256) {
        if (i == 0) return _seg0;
        if (i == 1) return _seg1;
        if (i == 2) return _seg2;
        return _seg3;
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IEmissionSchedule
    function segments() external view returns (Segment[] memory out) {
        uint256 n = _segmentCount;
        out = new Segment[](n);
        for (uint256 i; i < n; ++i) {
            uint256 s = _segment(i);
            uint256 end = uint48(s >> 144);
            out[i] = Segment({
                epochs: end == FOREVER ? 0 : uint48(end - uint48(s >> 96)),
                amountPerEpoch: uint96(s),
                decayBps: uint16(s >> 192),
                decayPeriod: uint32(s >> 208)
            });
        }
    }

    /// @inheritdoc IEmissionSchedule
    function epochEmission(uint256 epoch) external view returns (uint256 emission) {
        (emission,) = _emissionAt(epoch);
    }

    /// @inheritdoc IEmissionSchedule
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - _epochGenesis) / _epochLength;
    }

    /// @inheritdoc IEmissionSchedule
    function totalReleased() external view returns (uint256) {
        return _totalMinted;
    }

    /// @inheritdoc IEmissionSchedule
    function claimerOf(address operator) external view returns (uint256 nextEpoch, uint256 claimed) {
        Claimer memory c = _claimers[operator];
        return (c.nextEpoch, c.claimed);
    }

    /// @inheritdoc IEmissionSchedule
    function pendingRewards(address operator)
        external
        view
        returns (uint256 fromEpoch, uint256 toEpoch, uint256 tokens)
    {
        uint256 current = currentEpoch();
        uint256 next = _claimers[operator].nextEpoch;
        fromEpoch = next != 0 ? next : registry.firstEpochOf(operator);
        // The last claimable epoch is current - 1 - claimDelayEpochs.
        if (fromEpoch + claimDelayEpochs + 1 > current) return (fromEpoch, fromEpoch, 0);
        toEpoch = current - 1 - claimDelayEpochs;
        tokens = _rewards(operator, fromEpoch, toEpoch);
    }
}
