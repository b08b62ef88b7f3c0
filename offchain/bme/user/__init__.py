"""The user's side: wallets (encrypted keystores), quotes, and the commands that pay for jobs."""
