"""The scorer service: dynamic batched inference for uncertainty, as a public RPC."""
