"""Scenario replay for researchers: scenario files, simulated users and operators, runs against the real
contracts on a devnet or against the pure-Python reference model, per-epoch series, reports and sweeps.

A run is a `spec.Scenario` driven epoch by epoch (`driver`) against a `backend.Backend`: the reference model
(`model_backend`) or the contracts on a devnet (`chain_backend` over `devnets`). Both take the same actions in
the same order at the same block times, so their per-epoch records agree exactly (DESIGN.md section 4,
invariant 5).
"""
