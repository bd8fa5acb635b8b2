"""tenfold-runtime: what runs inside the serving pods (prepare, cache sidecar, bench)."""
