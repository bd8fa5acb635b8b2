"""The cache sidecar's command line: the contract between the plan and the runtime.

The plan renders these flags into the pod; `tenfold-runtime cache` parses them. Keeping the
names here means neither side can drift from the other.
"""

from pydantic import BaseModel, ConfigDict, Field

from tenfold.api.enums import CacheMode

# A Kubernetes object name (DNS subdomain): never `/`, `:` or a glob character, which keeps
# the cache key families of two services apart (see tenfold_runtime.cache.keys).
KUBERNETES_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"

# The sidecar's Redis login comes from a Secret through these variables: never from its
# argv, which any process of the pod (and `ps`) reads, nor from the InferenceService.
REDIS_PASSWORD_ENV = "TENFOLD_CACHE_REDIS_PASSWORD"
REDIS_USERNAME_ENV = "TENFOLD_CACHE_REDIS_USERNAME"


class SidecarSettings(BaseModel):
    """Settings of one cache sidecar process."""

    model_config = ConfigDict(frozen=True)

    listen: str = Field("0.0.0.0:8080", description="host:port of the KServe v2 HTTP proxy.")
    upstream: str = Field("http://127.0.0.1:8000", description="Triton's HTTP endpoint.")
    metrics_listen: str = Field("0.0.0.0:9090", description="host:port of /metrics.")
    backend: CacheMode = CacheMode.MEMORY
    redis_url: str | None = None
    ttl_seconds: int = 3600
    max_bytes: int = 256 * 1024 * 1024
    manifest: str = Field(description="Path of the prepare manifest (digest, precision).")
    service_namespace: str = Field(
        pattern=KUBERNETES_NAME, description="Namespace of the InferenceService; in every key."
    )
    service_name: str = Field(
        pattern=KUBERNETES_NAME, description="Name of the InferenceService; in every key."
    )
    redis_timeout_ms: int = Field(50, description="Bound on each Redis call; fail open after.")

    def to_args(self) -> list[str]:
        """Command-line flags, in a fixed order so rendered manifests are deterministic."""
        args = [
            f"--listen={self.listen}",
            f"--upstream={self.upstream}",
            f"--metrics-listen={self.metrics_listen}",
            f"--backend={self.backend.value}",
            f"--ttl-seconds={self.ttl_seconds}",
            f"--max-bytes={self.max_bytes}",
            f"--manifest={self.manifest}",
            f"--service-namespace={self.service_namespace}",
            f"--service-name={self.service_name}",
            f"--redis-timeout-ms={self.redis_timeout_ms}",
        ]
        if self.redis_url:
            args.append(f"--redis-url={self.redis_url}")
        return args
