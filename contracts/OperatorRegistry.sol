// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IOperatorRegistry, OperatorStatus} from "./interfaces/IOperatorRegistry.sol";
import {IComputeToken} from "./interfaces/IComputeToken.sol";
import {IJobEscrow} from "./interfaces/IJobEscrow.sol";

/// @title OperatorRegistry
/// @notice Operators' stakes, endpoints and models; unbonding, withdrawal, slashing and jail. See
/// `IOperatorRegistry` and `contracts/INVARIANTS.md`.
/// @dev Calls out only to CMP, the protocol's own token, which makes no call back. Rewardable stake is kept in
/// OpenZeppelin `Checkpoints` keyed by epoch: every change is written at the next epoch's key, so the value at an
/// epoch's key is what held when that epoch started.
contract OperatorRegistry is IOperatorRegistry, AccessControl {
    using Checkpoints for Checkpoints.Trace208;

    /// @notice Governance: the timelock. Changes the minimum stake and the unbonding delay.
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// @notice Burns stake against evidence and jails; granted by governance.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice This project's default: an active operator stakes at least 1,000 CMP.
    uint128 public constant DEFAULT_MIN_STAKE = 1_000e18;
    /// @notice Cosmos SDK's default unbonding time, which Akash uses: 21 days.
    uint32 public constant DEFAULT_UNBONDING_DELAY = 21 days;
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    uint256 public constant MAX_MODELS = 32;
    uint256 private constant MAX_UNBONDING_DELAY = 365 days;

    IComputeToken public immutable token;
    /// @dev The escrow's epoch clock, copied so that a registration needs no external call.
    uint256 private immutable _epochGenesis;
    uint256 private immutable _epochLength;

    /// @dev One slot: both are read by every registration.
    uint128 private _minStake;
    uint32 private _unbondingDelay;
    mapping(address operator => Operator) private _operators;
    mapping(address operator => string) private _endpoints;
    mapping(address operator => uint16[]) private _models;
    /// @dev `_models` as bitmaps of 256 model ids (`word` = modelId / 256), for the escrow's check at settlement.
    mapping(address operator => mapping(uint256 word => uint256 bits)) private _modelBits;
    /// @dev Per operator: its rewardable stake (its stake while Bonded and not jailed, else 0) by epoch.
    mapping(address operator => Checkpoints.Trace208) private _rewardStake;
    /// @dev The sum of all operators' rewardable stakes by epoch.
    Checkpoints.Trace208 private _totalRewardStake;
    /// @dev Per operator: one more than the epoch of its last slash (0: never slashed).
    mapping(address operator => uint256) private _slashedThrough;

    /// @param token_ CMP, the staking token.
    /// @param escrow The job escrow, whose epochs number the operators' first epochs. It must have been deployed
    /// naming this registry (its address precomputed), so that neither needs a setter to find the other.
    /// @param governor The timelock (admin and governor).
    /// @param slasher The account that may slash and unjail (governance, or a committee it appoints).
    constructor(IComputeToken token_, IJobEscrow escrow, address governor, address slasher) {
        if (address(escrow.registry()) != address(this)) revert OperatorRegistryEscrowMismatch(address(escrow));
        token = token_;
        _epochGenesis = escrow.epochGenesis();
        _epochLength = escrow.epochLength();
        _minStake = DEFAULT_MIN_STAKE;
        _unbondingDelay = DEFAULT_UNBONDING_DELAY;
        _grantRole(DEFAULT_ADMIN_ROLE, governor);
        _grantRole(GOVERNOR_ROLE, governor);
        _grantRole(SLASHER_ROLE, slasher);
    }

    // ---------------------------------------------------------------- operators

    /// @inheritdoc IOperatorRegistry
    function register(uint256 stake, string calldata endpoint, uint16[] calldata models) external {
        Operator memory op = _operators[msg.sender];
        if (op.status != OperatorStatus.None) revert OperatorRegistryAlreadyRegistered(msg.sender);
        uint256 minimum = _minStake;
        if (stake < minimum) revert OperatorRegistryStakeTooLow(stake, minimum);
        _checkListing(endpoint, models);
        if (!op.known) {
            // Fits 48 bits for any realistic chain clock: epochs last at least 65 s.
            op.firstEpoch = uint48((block.timestamp - _epochGenesis) / _epochLength);
            op.known = true;
        }
        // Fits 128 bits: a larger stake exceeds CMP's supply, so the transfer below reverts.
        op.stake = uint128(stake);
        op.status = OperatorStatus.Bonded;
        _operators[msg.sender] = op;
        _endpoints[msg.sender] = endpoint;
        _models[msg.sender] = models;
        _setModelBits(msg.sender, models);
        emit OperatorRegistered(msg.sender, stake, endpoint, models);
        _writeRewardStake(msg.sender, op.jailed ? 0 : stake);

        SafeERC20.safeTransferFrom(token, msg.sender, address(this), stake);
    }

    /// @inheritdoc IOperatorRegistry
    function update(string calldata endpoint, uint16[] calldata models) external {
        OperatorStatus status = _operators[msg.sender].status;
        if (status != OperatorStatus.Bonded) revert OperatorRegistryNotBonded(msg.sender, status);
        _checkListing(endpoint, models);
        _endpoints[msg.sender] = endpoint;
        _clearModelBits(msg.sender);
        _models[msg.sender] = models;
        _setModelBits(msg.sender, models);
        emit OperatorUpdated(msg.sender, endpoint, models);
    }

    /// @inheritdoc IOperatorRegistry
    function requestUnbonding() external {
        Operator storage op = _operators[msg.sender];
        OperatorStatus status = op.status;
        if (status != OperatorStatus.Bonded) revert OperatorRegistryNotBonded(msg.sender, status);
        uint256 ends = block.timestamp + _unbondingDelay;
        op.status = OperatorStatus.Unbonding;
        // Fits 48 bits: the time plus at most a year.
        op.unbondingEnds = uint48(ends);
        emit UnbondingRequested(msg.sender, op.stake, ends);
        _writeRewardStake(msg.sender, 0);
    }

    /// @inheritdoc IOperatorRegistry
    function withdraw() external returns (uint256 stake) {
        Operator storage op = _operators[msg.sender];
        OperatorStatus status = op.status;
        if (status != OperatorStatus.Unbonding) revert OperatorRegistryNotUnbonding(msg.sender, status);
        if (block.timestamp < op.unbondingEnds) revert OperatorRegistryUnbondingNotOver(msg.sender, op.unbondingEnds);
        stake = op.stake;
        op.stake = 0;
        op.unbondingEnds = 0;
        op.status = OperatorStatus.None;
        delete _endpoints[msg.sender];
        _clearModelBits(msg.sender);
        delete _models[msg.sender];
        emit StakeWithdrawn(msg.sender, stake);

        if (stake != 0) SafeERC20.safeTransfer(token, msg.sender, stake);
    }

    // ---------------------------------------------------------------- slashing

    /// @inheritdoc IOperatorRegistry
    function slash(address operator, uint256 amount, bytes32 evidenceHash)
        external
        onlyRole(SLASHER_ROLE)
        returns (uint256 slashed)
    {
        if (amount == 0) revert OperatorRegistryZeroAmount();
        Operator storage op = _operators[operator];
        if (op.status == OperatorStatus.None) revert OperatorRegistryNotRegistered(operator);
        uint256 stake = op.stake;
        slashed = amount < stake ? amount : stake;
        unchecked {
            // Cannot underflow: slashed is at most the stake.
            stake -= slashed;
        }
        op.stake = uint128(stake);
        op.jailed = true;
        uint256 through = _currentEpoch() + 1;
        _slashedThrough[operator] = through;
        emit OperatorSlashed(operator, slashed, stake, evidenceHash);
        emit RewardsForfeited(operator, through);
        _writeRewardStake(operator, 0);

        if (slashed != 0) token.burn(slashed);
    }

    /// @inheritdoc IOperatorRegistry
    function unjail(address operator) external onlyRole(SLASHER_ROLE) {
        Operator storage op = _operators[operator];
        if (!op.jailed) revert OperatorRegistryNotJailed(operator);
        op.jailed = false;
        emit OperatorUnjailed(operator);
        if (op.status == OperatorStatus.Bonded) _writeRewardStake(operator, op.stake);
    }

    // ---------------------------------------------------------------- governance

    /// @inheritdoc IOperatorRegistry
    function setMinStake(uint128 minStake_) external onlyRole(GOVERNOR_ROLE) {
        if (minStake_ == 0) revert OperatorRegistryZeroAmount();
        _minStake = minStake_;
        emit MinStakeUpdated(minStake_);
    }

    /// @inheritdoc IOperatorRegistry
    function setUnbondingDelay(uint32 unbondingDelay_) external onlyRole(GOVERNOR_ROLE) {
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) revert OperatorRegistryInvalidUnbondingDelay(unbondingDelay_);
        _unbondingDelay = unbondingDelay_;
        emit UnbondingDelayUpdated(unbondingDelay_);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IOperatorRegistry
    function operatorOf(address operator) external view returns (Operator memory) {
        return _operators[operator];
    }

    /// @inheritdoc IOperatorRegistry
    function endpointOf(address operator) external view returns (string memory) {
        return _endpoints[operator];
    }

    /// @inheritdoc IOperatorRegistry
    function modelsOf(address operator) external view returns (uint16[] memory) {
        return _models[operator];
    }

    /// @inheritdoc IOperatorRegistry
    function isActive(address operator) external view returns (bool) {
        return _isActive(operator);
    }

    /// @inheritdoc IOperatorRegistry
    function eligibility(address operator, uint256 word) external view returns (bool active, uint256 models) {
        return (_isActive(operator), _modelBits[operator][word]);
    }

    /// @dev The one definition of an active operator: bonded, not jailed, staking at least the minimum.
    function _isActive(address operator) private view returns (bool) {
        Operator memory op = _operators[operator];
        // slither-disable-next-line incorrect-equality -- an enum compared with one of its values, not a balance
        return op.status == OperatorStatus.Bonded && !op.jailed && op.stake >= _minStake;
    }

    /// @inheritdoc IOperatorRegistry
    function firstEpochOf(address operator) external view returns (uint256) {
        Operator memory op = _operators[operator];
        if (!op.known) revert OperatorRegistryUnknownOperator(operator);
        return op.firstEpoch;
    }

    /// @inheritdoc IOperatorRegistry
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IOperatorRegistry
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @dev Sets the bits of `models` in `operator`'s bitmaps (which must hold no other model).
    function _setModelBits(address operator, uint16[] calldata models) private {
        mapping(uint256 => uint256) storage bits = _modelBits[operator];
        for (uint256 i; i < models.length; ++i) {
            uint256 id = models[i];
            bits[id >> 8] |= 1 << (id & 255);
        }
    }

    /// @dev Clears `operator`'s bitmaps: the words of the models it lists now.
    function _clearModelBits(address operator) private {
        mapping(uint256 => uint256) storage bits = _modelBits[operator];
        uint16[] storage listed = _models[operator];
        uint256 n = listed.length;
        for (uint256 i; i < n; ++i) {
            delete bits[uint256(listed[i]) >> 8];
        }
    }

    /// @inheritdoc IOperatorRegistry
    function rewardStakeAt(address operator, uint256 epoch) external view returns (uint256) {
        return _rewardStake[operator].upperLookup(SafeCast.toUint48(epoch));
    }

    /// @inheritdoc IOperatorRegistry
    function totalRewardStakeAt(uint256 epoch) external view returns (uint256) {
        return _totalRewardStake.upperLookup(SafeCast.toUint48(epoch));
    }

    /// @inheritdoc IOperatorRegistry
    function slashedThrough(address operator) external view returns (uint256) {
        return _slashedThrough[operator];
    }

    /// @inheritdoc IOperatorRegistry
    function rewardWeights(address operator, uint256 fromEpoch, uint256 toEpoch)
        external
        view
        returns (uint256[] memory weights, uint256[] memory totals)
    {
        if (toEpoch < fromEpoch) revert OperatorRegistryInvalidRange(fromEpoch, toEpoch);
        uint256 n = toEpoch - fromEpoch + 1;
        weights = new uint256[](n);
        totals = new uint256[](n);
        uint256 forfeited = _slashedThrough[operator];
        uint256 start = forfeited > fromEpoch ? forfeited : fromEpoch;
        if (start > toEpoch) return (weights, totals);
        uint256 count = toEpoch - start + 1;
        uint256[] memory own = _valuesAt(_rewardStake[operator], start, count + 1);
        uint256[] memory all = _valuesAt(_totalRewardStake, start, count);
        uint256 offset = start - fromEpoch;
        for (uint256 k; k < count; ++k) {
            // The weight is the smaller of the stake at the epoch and at the next: a fall during it forfeits it.
            (uint256 stake, uint256 next) = (own[k], own[k + 1]);
            weights[offset + k] = stake < next ? stake : next;
            totals[offset + k] = all[k];
        }
    }

    /// @dev The values of `t` at epochs `start` to `start + count - 1`: one binary search, then one read per
    /// epoch (a key holds at most one checkpoint; `i` counts the checkpoints keyed at most the epoch).
    function _valuesAt(Checkpoints.Trace208 storage t, uint256 start, uint256 count)
        private
        view
        returns (uint256[] memory values)
    {
        values = new uint256[](count);
        uint256 length = t.length();
        uint256 i = _position(t, start);
        uint256 value = i == 0 ? 0 : t.at(uint32(i - 1))._value;
        for (uint256 k; k < count; ++k) {
            if (k != 0 && i < length) {
                Checkpoints.Checkpoint208 memory c = t.at(uint32(i));
                // slither-disable-next-line incorrect-equality -- epoch keys are exact: one checkpoint per epoch
                if (c._key == start + k) (value, i) = (c._value, i + 1);
            }
            values[k] = value;
        }
    }

    /// @dev Writes `operator`'s rewardable stake `value` from the next epoch on, and moves the total by the change.
    function _writeRewardStake(address operator, uint256 value) private {
        uint48 key = SafeCast.toUint48(_currentEpoch() + 1);
        Checkpoints.Trace208 storage own = _rewardStake[operator];
        uint256 before = own.latest();
        if (value == before) return;
        // slither-disable-next-line unused-return -- push returns the old and new values, known here already
        own.push(key, SafeCast.toUint208(value));
        uint256 total = _totalRewardStake.latest();
        // Cannot underflow: the total is the sum of every operator's latest value, `before` among them.
        // slither-disable-next-line unused-return -- push returns the old and new values, known here already
        _totalRewardStake.push(key, SafeCast.toUint208(total + value - before));
        emit RewardStakeChanged(operator, key, value);
    }

    /// @dev The number of checkpoints of `t` with a key at most `epoch`.
    function _position(Checkpoints.Trace208 storage t, uint256 epoch) private view returns (uint256 low) {
        uint256 high = t.length();
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (t.at(uint32(mid))._key > epoch) high = mid;
            else low = mid + 1;
        }
    }

    function _currentEpoch() private view returns (uint256) {
        return (block.timestamp - _epochGenesis) / _epochLength;
    }

    function _checkListing(string calldata endpoint, uint16[] calldata models) private pure {
        uint256 length = bytes(endpoint).length;
        if (length == 0 || length > MAX_ENDPOINT_LENGTH) revert OperatorRegistryInvalidEndpoint(length);
        if (models.length == 0 || models.length > MAX_MODELS) revert OperatorRegistryInvalidModels(models.length);
    }
}
