"""The operator node: an OpenAI-compatible inference server that serves the relayer's paid jobs.

`bme operator serve` runs it in front of either the embedded model (SmolLM2-135M-Instruct on the CPU with
llama-cpp-python) or any OpenAI-compatible upstream server. Every completion reports exact token usage,
which is what the user is charged on-chain, and only the trusted relayer may call the paid endpoints.
"""
