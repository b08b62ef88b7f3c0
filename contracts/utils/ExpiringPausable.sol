// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title ExpiringPausable
/// @notice OpenZeppelin's Pausable, with pauses that end by themselves. A pause lasts at most `MAX_PAUSE`: after that
/// the contract behaves as unpaused without any transaction. Governance may end a pause early. A new pause may start
/// only `PAUSE_COOLDOWN` after the previous one ended (by expiry or early), so a guardian cannot keep the contract
/// paused back to back: at most `MAX_PAUSE` out of every `MAX_PAUSE + PAUSE_COOLDOWN`.
/// @dev `paused()` reads the expiry, not Pausable's flag, which `_pause`/`_unpause` still write; `whenNotPaused`,
/// `whenPaused`, `_pause` and `_unpause` all go through `paused()`. The two timestamps share a slot with that flag.
abstract contract ExpiringPausable is Pausable {
    /// @notice The longest a pause lasts.
    uint256 public constant MAX_PAUSE = 7 days;
    /// @notice How long after a pause ends the next one may start.
    uint256 public constant PAUSE_COOLDOWN = 7 days;

    uint48 private _pausedUntil;
    uint48 private _nextPauseAt;

    /// @notice The pause ends at `pausedUntil` (a new pause, which then ends by itself, or the current one ended
    /// early by governance); the next one may start at `nextPauseAt`.
    event PauseScheduled(uint256 pausedUntil, uint256 nextPauseAt);

    /// @notice A pause was asked for before `nextPauseAt`, the end of the cooldown after the previous pause.
    error PauseCooldown(uint256 nextPauseAt);

    /// @notice Whether the contract is paused now: a pause started and has neither expired nor been ended.
    function paused() public view virtual override returns (bool) {
        return block.timestamp < _pausedUntil;
    }

    /// @notice When the current (or last) pause ends or ended; zero before the first pause.
    function pausedUntil() external view returns (uint256) {
        return _pausedUntil;
    }

    /// @notice The earliest time a new pause may start.
    function nextPauseAt() external view returns (uint256) {
        return _nextPauseAt;
    }

    /// @dev Starts a pause of `MAX_PAUSE`; reverts when paused already (`EnforcedPause`) or within the cooldown of
    /// the previous pause (`PauseCooldown`).
    function _pauseExpiring() internal {
        _pause();
        if (block.timestamp < _nextPauseAt) revert PauseCooldown(_nextPauseAt);
        uint256 until = block.timestamp + MAX_PAUSE;
        // Both fit 48 bits for the lifetime of the chain's clock.
        _pausedUntil = uint48(until);
        _nextPauseAt = uint48(until + PAUSE_COOLDOWN);
        emit PauseScheduled(until, until + PAUSE_COOLDOWN);
    }

    /// @dev Ends the current pause now (`ExpectedPause` when there is none); the cooldown before the next one runs
    /// from now.
    function _unpauseEarly() internal {
        _unpause();
        _pausedUntil = uint48(block.timestamp);
        _nextPauseAt = uint48(block.timestamp + PAUSE_COOLDOWN);
        emit PauseScheduled(block.timestamp, block.timestamp + PAUSE_COOLDOWN);
    }
}
