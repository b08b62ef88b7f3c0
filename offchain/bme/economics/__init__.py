"""The protocol's economics as plain functions and dataclasses, free of I/O.

Mirrors the Solidity libraries function for function (`contracts/libraries/`), so that the chain and
this model agree exactly; the model grows into the reference model that scenario replays run without a chain.
"""
