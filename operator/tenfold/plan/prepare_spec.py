"""The prepare spec of one InferenceService: what its `prepare` init container must build."""

from __future__ import annotations

from tenfold.api.catalog import CPU
from tenfold.api.prepare import GuardSettings, PrepareSpec
from tenfold.api.serving import SERVING
from tenfold.api.spec import InferenceServiceSpec
from tenfold.constants import MODEL_REPOSITORY_PATH
from tenfold.plan.source import runtime_source
from tenfold.plan.triton_config import build_config_pbtxt, build_step_configs, render_config_pbtxt


def build_prepare_spec(name: str, spec: InferenceServiceSpec) -> PrepareSpec:
    """What the `prepare` init container of InferenceService `name` must build.

    The Triton model name is `spec.model.name`; `name` (the InferenceService) does not enter
    the prepare spec, so renaming a service does not change its config hash.
    """
    model, quantization = spec.model, spec.quantization
    guard = quantization.guard
    return PrepareSpec(
        model_name=model.name,
        source=runtime_source(model.source),
        format=model.format,
        task=model.task,
        version=model.version,
        precision=quantization.precision,
        keep_higher_precision=list(quantization.keep_higher_precision),
        guard=GuardSettings(
            metric=SERVING.guard_metric(model.task, guard.metric),
            max_drop=guard.max_drop,
            max_worst_drop=guard.max_worst_drop,
            calibration_samples=guard.calibration_samples,
            fallback=list(guard.fallback),
        ),
        backend=spec.runtime.backend,
        engine=spec.runtime.engine,
        device="cpu" if spec.hardware.gpu_type == CPU else "cuda",
        max_batch_size=spec.batching.max_batch_size,
        config_pbtxt=build_config_pbtxt(spec),
        step_configs={
            step: render_config_pbtxt(config) for step, config in build_step_configs(spec).items()
        },
        repository=MODEL_REPOSITORY_PATH,
    )
