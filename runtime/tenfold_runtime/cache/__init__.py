"""The cache sidecar: a versioned KServe v2 HTTP cache in front of Triton.

Inference over HTTP goes through the cache; everything else over HTTP passes through to
Triton. gRPC is not proxied: clients reach Triton's gRPC port (8001) directly and bypass
the cache. `main(argv)` is `tenfold-runtime cache`.
"""

from tenfold_runtime.cache.cli import main

__all__ = ["main"]
