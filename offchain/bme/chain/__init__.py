"""Chain access: compiled artifacts, a fast locally-signing client, deployment, devnets, revert decoding."""
