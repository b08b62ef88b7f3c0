// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Where an operator is in its life. None: never registered, or withdrawn. Bonded: staked and serving.
/// Unbonding: asked to leave; its stake is still slashable until it withdraws after the unbonding delay.
enum OperatorStatus {
    None,
    Bonded,
    Unbonding
}

/// @title IOperatorRegistry
/// @notice Node operators join with a CMP stake of at least `minStake`, an endpoint URL and the models they serve;
/// they update them, ask to unbond, and withdraw their stake after the unbonding delay. Governance's slasher
/// (`SLASHER_ROLE`) burns stake against an evidence hash and jails the operator; the relayer dispatches only to
/// active operators (bonded, not jailed, stake at least `minStake`). Every change emits an event, so the active set
/// can be rebuilt from the chain's logs alone.
///
/// Emission rewards follow rewardable stake, not work: an operator's rewardable stake is its stake while Bonded and
/// not jailed, else 0. Every change to it (registration, unbonding request, slash, unjail) takes effect at the next
/// epoch, recorded per operator and in total by epoch (OpenZeppelin `Checkpoints`). The reward weight of an
/// operator in epoch e is the smaller of its rewardable stake at e and at e + 1, so joining during e earns nothing
/// for e and leaving, being jailed or slashed during e forfeits e; the weights of an epoch sum to at most the total
/// at e, the denominator. A slash also forfeits every epoch up to and including the slash's (`slashedThrough`).
interface IOperatorRegistry {
    /// @notice An operator's stored state: one storage slot.
    /// @param stake CMP staked (18 decimals).
    /// @param firstEpoch The escrow epoch of the operator's first registration; kept after a withdrawal.
    /// @param unbondingEnds While Unbonding: the unix time from which the stake may be withdrawn.
    /// @param status See {OperatorStatus}.
    /// @param jailed Set by a slash, cleared only by the slasher; kept across a withdrawal and a new registration.
    /// @param known Whether the address ever registered.
    struct Operator {
        uint128 stake;
        uint48 firstEpoch;
        uint48 unbondingEnds;
        OperatorStatus status;
        bool jailed;
        bool known;
    }

    /// @notice `operator` staked `stake` CMP and serves `models` at `endpoint`.
    event OperatorRegistered(address indexed operator, uint256 stake, string endpoint, uint16[] models);
    /// @notice `operator` now serves `models` at `endpoint`.
    event OperatorUpdated(address indexed operator, string endpoint, uint16[] models);
    /// @notice `operator` asked to leave; its `stake` may be withdrawn from `unbondingEnds`.
    event UnbondingRequested(address indexed operator, uint256 stake, uint256 unbondingEnds);
    /// @notice `operator` withdrew its remaining `stake` and is no longer registered.
    event StakeWithdrawn(address indexed operator, uint256 stake);
    /// @notice `slashed` CMP of `operator`'s stake were burned for the evidence `evidenceHash`, leaving
    /// `remainingStake`; the operator is jailed.
    event OperatorSlashed(
        address indexed operator, uint256 slashed, uint256 remainingStake, bytes32 indexed evidenceHash
    );
    /// @notice The slasher released `operator` from jail.
    event OperatorUnjailed(address indexed operator);
    /// @notice From epoch `epoch` on, `operator`'s rewardable stake is `stake`.
    event RewardStakeChanged(address indexed operator, uint256 epoch, uint256 stake);
    /// @notice A slash forfeited `operator`'s emission rewards of every epoch before `beforeEpoch` not yet claimed.
    event RewardsForfeited(address indexed operator, uint256 beforeEpoch);
    /// @notice Governance changed the smallest stake an active operator needs.
    event MinStakeUpdated(uint256 minStake);
    /// @notice Governance changed the seconds between an unbonding request and the withdrawal.
    event UnbondingDelayUpdated(uint256 unbondingDelay);

    /// @notice `operator` is already registered (bonded or unbonding).
    error OperatorRegistryAlreadyRegistered(address operator);
    /// @notice A stake of `stake` is below the minimum of `minStake`.
    error OperatorRegistryStakeTooLow(uint256 stake, uint256 minStake);
    /// @notice An endpoint must be 1 to 256 bytes long.
    error OperatorRegistryInvalidEndpoint(uint256 length);
    /// @notice An operator must serve 1 to 32 models; `count` were given.
    error OperatorRegistryInvalidModels(uint256 count);
    /// @notice `operator` is `status`, not Bonded.
    error OperatorRegistryNotBonded(address operator, OperatorStatus status);
    /// @notice `operator` is `status`, not Unbonding.
    error OperatorRegistryNotUnbonding(address operator, OperatorStatus status);
    /// @notice `operator`'s stake may be withdrawn only from `unbondingEnds`.
    error OperatorRegistryUnbondingNotOver(address operator, uint256 unbondingEnds);
    /// @notice `operator` is not registered (never, or withdrawn).
    error OperatorRegistryNotRegistered(address operator);
    /// @notice `operator` never registered.
    error OperatorRegistryUnknownOperator(address operator);
    /// @notice `operator` is not jailed.
    error OperatorRegistryNotJailed(address operator);
    /// @notice An amount of zero was given.
    error OperatorRegistryZeroAmount();
    /// @notice A range of epochs from `fromEpoch` to `toEpoch` must not end before it starts.
    error OperatorRegistryInvalidRange(uint256 fromEpoch, uint256 toEpoch);
    /// @notice The unbonding delay must be at most 365 days.
    error OperatorRegistryInvalidUnbondingDelay(uint256 unbondingDelay);

    /// @notice Registers the caller with `stake` CMP (which it must have approved this contract for), serving
    /// `models` at `endpoint`.
    function register(uint256 stake, string calldata endpoint, uint16[] calldata models) external;

    /// @notice Changes the caller's endpoint and models. Only while bonded.
    function update(string calldata endpoint, uint16[] calldata models) external;

    /// @notice Starts the caller's unbonding: it is no longer active, and may withdraw after the unbonding delay.
    function requestUnbonding() external;

    /// @notice Returns the caller's remaining stake once its unbonding is over; the caller is then unregistered.
    /// @return stake CMP returned.
    function withdraw() external returns (uint256 stake);

    /// @notice Burns up to `amount` of `operator`'s stake (all of it when `amount` is larger) for the evidence
    /// `evidenceHash`, and jails the operator. Only callable by the slasher (`SLASHER_ROLE`).
    /// @return slashed CMP burned.
    function slash(address operator, uint256 amount, bytes32 evidenceHash) external returns (uint256 slashed);

    /// @notice Releases `operator` from jail. Only callable by the slasher.
    function unjail(address operator) external;

    /// @notice Changes the smallest stake of an active operator (and of a registration). Only governance.
    function setMinStake(uint128 minStake) external;

    /// @notice Changes the unbonding delay for later requests. Only governance.
    function setUnbondingDelay(uint32 unbondingDelay) external;

    /// @notice The stored state of `operator`.
    function operatorOf(address operator) external view returns (Operator memory);

    /// @notice `operator`'s endpoint URL.
    function endpointOf(address operator) external view returns (string memory);

    /// @notice The model ids `operator` serves.
    function modelsOf(address operator) external view returns (uint16[] memory);

    /// @notice Whether the relayer may dispatch to `operator`: bonded, not jailed, and staking at least `minStake`.
    function isActive(address operator) external view returns (bool);

    /// @notice The escrow epoch of `operator`'s first registration; reverts when it never registered.
    function firstEpochOf(address operator) external view returns (uint256);

    /// @notice `operator`'s rewardable stake (its stake while Bonded and not jailed) in epoch `epoch`.
    function rewardStakeAt(address operator, uint256 epoch) external view returns (uint256);

    /// @notice The sum of all operators' rewardable stakes in epoch `epoch`: the denominator of its emission.
    function totalRewardStakeAt(uint256 epoch) external view returns (uint256);

    /// @notice One more than the epoch of `operator`'s last slash (0: never slashed); rewards of epochs before it
    /// are forfeited.
    function slashedThrough(address operator) external view returns (uint256);

    /// @notice For each epoch from `fromEpoch` to `toEpoch` inclusive: `operator`'s reward weight (the smaller of
    /// its rewardable stake at the epoch and at the next, zero for an epoch forfeited by a slash) and the total
    /// rewardable stake at the epoch.
    function rewardWeights(address operator, uint256 fromEpoch, uint256 toEpoch)
        external
        view
        returns (uint256[] memory weights, uint256[] memory totals);

    /// @notice The smallest stake of an active operator, in CMP base units.
    function minStake() external view returns (uint256);

    /// @notice Seconds between an unbonding request and the withdrawal.
    function unbondingDelay() external view returns (uint256);
}
