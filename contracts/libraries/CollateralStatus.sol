// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The protocol's health, from the collateral ratio (CR) and the oracle.
/// Healthy: everything open. Warning: CR below the warning threshold; still open, a signal to governance.
/// HaltCR: CR below the halt threshold; no credits are minted. HaltOracle: the last price read failed its
/// freshness, positivity or confidence checks; nothing that needs a price runs.
enum Status {
    Healthy,
    Warning,
    HaltCR,
    HaltOracle
}

/// @title CollateralStatus
/// @notice The status machine, with hysteresis: a status entered because the CR fell below a threshold is left only
/// once the CR is back at or above that threshold plus `hysteresisBps`, so the status does not flap around a threshold.
/// Akash's BME has no hysteresis; this is the project's addition. HaltOracle is not a collateral status: the BME core
/// records an oracle failure beside the collateral status, so `previous` is never HaltOracle there, and an oracle
/// outage neither enters nor prolongs a collateral halt.
/// Mirrored by `offchain/bme/economics/status.py`.
library CollateralStatus {
    /// @notice The next status given the previous one, the current CR and whether the oracle read passed its checks.
    function next(Status previous, bool oracleOk, uint256 crBps, uint256 warnBps, uint256 haltBps, uint256 hysteresisBps)
        internal
        pure
        returns (Status)
    {
        if (!oracleOk) return Status.HaltOracle;
        if (crBps < haltBps) return Status.HaltCR;
        bool wasHalted = previous == Status.HaltCR;
        if (wasHalted && crBps < haltBps + hysteresisBps) return Status.HaltCR;
        if (crBps < warnBps) return Status.Warning;
        if (previous != Status.Healthy && crBps < warnBps + hysteresisBps) return Status.Warning;
        return Status.Healthy;
    }
}
