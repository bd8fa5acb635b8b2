"""The cache sidecar's development harness: local Redis, sidecar and stand-in Triton model,
and the loopback benchmark built on them."""
