"""Accounts for people: encrypted keystores (Web3 Secret Storage, as geth and foundry write them)."""
