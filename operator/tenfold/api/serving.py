"""What tenfold can serve: the one table of task × format × backend, guard metric, device and
precision.

A spec passes admission only if the runtime can build and serve it, so that nothing is accepted
that then crash-loops the `prepare` init container. Three readers use this table and nothing
else: `rules.py` generates the CRD's CEL and the Python rules of `tenfold validate` and the
operator from it, `reference.py` renders the table of `docs/api.md` from it, and the runtime's
`prepare` refuses what it cannot serve with the same words. A new serving path is a new row of
SERVED (and one reason fewer in NOT_SERVED); the rules, the CRD and the docs follow. An engine
other than the backend's own (`runtime.engine`) is an EngineServing: the paths it runs on, the
precisions it serves and whether it needs a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tenfold.api.enums import Backend, Engine, GuardMetric, ModelFormat, Precision, Task

# The spec fields the table is looked up by, as CEL field paths relative to spec.
TASK_FIELD = ".model.task"
FORMAT_FIELD = ".model.format"
BACKEND_FIELD = ".runtime.backend"
METRIC_FIELD = ".quantization.guard.metric"
PRECISION_FIELD = ".quantization.precision"
FALLBACK_FIELD = ".quantization.guard.fallback"
ENGINE_FIELD = ".runtime.engine"


@dataclass(frozen=True)
class Dimension:
    """One field the table is looked up by. Values are compared per dimension: `python` is
    both a format and a backend, and StrEnum members of equal value compare equal."""

    name: str  # the ServedPath attribute and the rule's prefix
    field_path: str
    values: type[StrEnum]


DIMENSIONS = (
    Dimension("task", TASK_FIELD, Task),
    Dimension("format", FORMAT_FIELD, ModelFormat),
    Dimension("backend", BACKEND_FIELD, Backend),
)


@dataclass(frozen=True)
class ServedPath:
    """One combination the runtime serves, and how."""

    task: Task
    format: ModelFormat
    backend: Backend
    how: str

    def key(self) -> str:
        """`task/format/backend`, the CEL rule's key."""
        return combination_key(self.task, self.format, self.backend)


@dataclass(frozen=True)
class EngineServing:
    """An engine other than the default (torch): the paths it runs, the precisions it serves,
    and why it is refused on GPU types (None: served on them too)."""

    engine: Engine
    paths: tuple[ServedPath, ...]
    precisions: tuple[Precision, ...]
    precision_reason: str  # why the other precisions are not served
    gpu_reason: str | None = None

    def serves(self, task: Task, format: ModelFormat, backend: Backend) -> bool:
        """Whether this engine runs the combination."""
        key = combination_key(task, format, backend)
        return any(p.key() == key for p in self.paths)

    def path_message(self) -> str:
        """Why the engine is refused elsewhere, naming where it runs."""
        values = {
            d.name: " or ".join(sorted({str(getattr(p, d.name)) for p in self.paths}))
            for d in DIMENSIONS
        }
        return (
            f"engine {self.engine} runs only with runtime.backend {values['backend']} and "
            f"model.format {values['format']}, for model.task {values['task']}; "
            "other combinations take the default engine torch"
        )

    def precision_message(self, precision: str) -> str:
        """Why `precision` is refused with this engine."""
        served = " or ".join(str(p) for p in self.precisions)
        return (
            f"engine {self.engine} serves precision {served}, not {precision}: "
            f"{self.precision_reason}"
        )

    def gpu_message(self) -> str:
        """Why the engine is refused on a GPU type."""
        return f"engine {self.engine} is served on gpuType cpu only: {self.gpu_reason}"


@dataclass(frozen=True)
class Refusal:
    """Why a spec cannot be served: the rule it breaks, the field to change and why."""

    rule: str
    field_path: str  # relative to spec, CEL's fieldPath syntax
    reason: str


@dataclass(frozen=True)
class ServingTable:
    """The served paths, and the reasons for everything else."""

    served: tuple[ServedPath, ...]
    # Per dimension name: why a value that no served path uses is refused.
    not_served: Mapping[str, Mapping[str, str]]
    # The guard metrics that fit each task (how its quantized outputs are compared); the
    # first is the task's default, used when the spec names none.
    guard_metrics: Mapping[Task, tuple[GuardMetric, ...]]
    # Backends that run only on a GPU.
    gpu_only: frozenset[Backend]
    # Precisions tenfold serves on no device, and why. What each GPU's hardware runs is the
    # catalog's (gpu_catalog.yaml); the precision rules admit a precision only when both allow it.
    precisions_not_served: Mapping[Precision, str]
    # Formats served only on CPU nodes, and why.
    cpu_only_formats: Mapping[ModelFormat, str] = field(default_factory=dict)
    # Engines other than the default (torch), where they run and what they serve.
    engines: tuple[EngineServing, ...] = ()

    def served_values(self, dimension: Dimension) -> list[str]:
        """The values of `dimension` that some served path uses, in enum order."""
        used = {str(getattr(p, dimension.name)) for p in self.served}
        return [v.value for v in dimension.values if v.value in used]

    def refused_messages(self, dimension: Dimension) -> dict[str, str]:
        """The message for each value of `dimension` that no served path uses."""
        return {
            str(value): f"{dimension.name} {value} is not served: {reason}"
            for value, reason in self.not_served.get(dimension.name, {}).items()
        }

    def path(self, task: Task, format: ModelFormat, backend: Backend) -> ServedPath | None:
        """The served path of this combination, or None."""
        key = combination_key(task, format, backend)
        return next((p for p in self.served if p.key() == key), None)

    def combination_refusals(
        self, task: Task, format: ModelFormat, backend: Backend
    ) -> list[Refusal]:
        """Why this task, format and backend cannot be served together; empty when they can."""
        chosen = {"task": task, "format": format, "backend": backend}
        found = [
            Refusal(f"{d.name}-served", d.field_path, message)
            for d in DIMENSIONS
            if (message := self.refused_messages(d).get(str(chosen[d.name]))) is not None
        ]
        if not found and self.path(task, format, backend) is None:
            reason = self.combination_message(task, format)
            found.append(Refusal("combination-served", BACKEND_FIELD, reason))
        return found

    def precision_served(self, precision: Precision) -> bool:
        """Whether tenfold serves `precision` at all (on a device whose hardware runs it)."""
        return precision not in self.precisions_not_served

    def precision_messages(self) -> dict[str, str]:
        """The message for each precision tenfold does not serve."""
        return {
            str(precision): f"precision {precision} is not served: {reason}"
            for precision, reason in self.precisions_not_served.items()
        }

    def precision_refusals(
        self, precision: Precision, fallback: Sequence[Precision]
    ) -> list[Refusal]:
        """Why the requested precision, or a rung of the guard's fallback ladder, is refused."""
        messages = self.precision_messages()
        found = []
        if str(precision) in messages:
            found.append(Refusal("precision-served", PRECISION_FIELD, messages[str(precision)]))
        refused = [message for p, message in messages.items() if p in fallback]
        if refused:
            found.append(Refusal("fallback-served", FALLBACK_FIELD, "; ".join(refused)))
        return found

    def refusals(
        self,
        task: Task,
        format: ModelFormat,
        backend: Backend,
        metric: GuardMetric | None,
        *,
        gpu: bool,
        precision: Precision,
        fallback: Sequence[Precision],
        engine: Engine = Engine.TORCH,
    ) -> list[Refusal]:
        """Every reason the runtime cannot serve this choice; empty when it can."""
        found = self.combination_refusals(task, format, backend)
        found += self.precision_refusals(precision, fallback)
        found += self.engine_refusals(task, format, backend, engine, gpu=gpu, precision=precision)
        if metric is not None and not self.metric_fits(task, metric):
            reason = self.metric_message(task, metric)
            found.append(Refusal("metric-fits-task", METRIC_FIELD, reason))
        if backend in self.gpu_only and not gpu:
            found.append(Refusal("backend-needs-gpu", BACKEND_FIELD, self.gpu_message()))
        if format in self.cpu_only_formats and gpu:
            reason = self.cpu_message(format)
            found.append(Refusal("format-needs-cpu", FORMAT_FIELD, reason))
        return found

    def engine_refusals(
        self,
        task: Task,
        format: ModelFormat,
        backend: Backend,
        engine: Engine,
        *,
        gpu: bool,
        precision: Precision,
    ) -> list[Refusal]:
        """Why `engine` cannot run this choice; empty for the default engine."""
        served = next((e for e in self.engines if e.engine == engine), None)
        if served is None:
            return []
        found = []
        if not served.serves(task, format, backend):
            found.append(Refusal("engine-served", ENGINE_FIELD, served.path_message()))
        # A precision served nowhere is precision-served's to refuse, with its own reason.
        if self.precision_served(precision) and precision not in served.precisions:
            reason = served.precision_message(precision)
            found.append(Refusal("engine-precision", PRECISION_FIELD, reason))
        if gpu and served.gpu_reason is not None:
            found.append(Refusal("engine-needs-cpu", ENGINE_FIELD, served.gpu_message()))
        return found

    def metric_fits(self, task: Task, metric: GuardMetric | None) -> bool:
        """Whether the guard metric fits the task (unset: the task's default; a task without
        guard metrics takes any)."""
        fitting = self.guard_metrics.get(task)
        return metric is None or fitting is None or metric in fitting

    def guard_metric(self, task: Task, metric: GuardMetric | None) -> GuardMetric:
        """The metric the guard uses: the spec's, else the task's default (cosine for a task
        the table gives no metrics, as for embeddings)."""
        return metric or self.guard_metrics.get(task, (GuardMetric.COSINE,))[0]

    def combination_message(self, task: str, format: str) -> str:
        """Why the backend cannot serve this task and format, naming the ones that can."""
        backends = [p.backend.value for p in self.served if (p.task, p.format) == (task, format)]
        if not backends:
            return f"no backend serves {task} models of format {format} yet"
        return f"{task} models of format {format} are served by backend {' or '.join(backends)}"

    def metric_message(self, task: Task, metric: str) -> str:
        """Why guard metric `metric` does not fit `task`."""
        fitting = " or ".join(self.guard_metrics.get(task, ()))
        return f"guard metric {metric} does not fit task {task}, which is guarded by {fitting}"

    def gpu_message(self) -> str:
        """Why a GPU-only backend is refused on cpu."""
        return f"the {' and '.join(sorted(self.gpu_only))} backends need a GPU; gpuType is cpu"

    def cpu_message(self, format: ModelFormat) -> str:
        """Why `format` is refused on a GPU type."""
        return f"format {format} is served on gpuType cpu only: {self.cpu_only_formats[format]}"

    def check_complete(self) -> list[str]:
        """Values neither served nor given a reason, or both: the table's own consistency."""
        problems = []
        for dimension in DIMENSIONS:
            served = set(self.served_values(dimension))
            refused = set(self.refused_messages(dimension))
            for value in dimension.values:
                if (value.value in served) == (value.value in refused):
                    state = "served and refused" if value.value in served else "not accounted for"
                    problems.append(f"{dimension.name} {value}: {state}")
        return problems


def combination_key(task: str, format: str, backend: str) -> str:
    """`task/format/backend`: how the CEL rule names one combination."""
    return f"{task}/{format}/{backend}"


SERVING = ServingTable(
    served=(
        ServedPath(
            Task.EMBEDDING,
            ModelFormat.HUGGINGFACE,
            Backend.PYTHON,
            "the guarded encoder in a generated model.py",
        ),
        ServedPath(
            Task.EMBEDDING,
            ModelFormat.HUGGINGFACE,
            Backend.PYTORCH,
            "the guarded encoder exported to TorchScript, behind a tokenizer ensemble",
        ),
        ServedPath(
            Task.EMBEDDING,
            ModelFormat.HUGGINGFACE,
            Backend.ONNXRUNTIME,
            "the guarded encoder exported to ONNX, behind a tokenizer ensemble",
        ),
        ServedPath(
            Task.CLASSIFICATION,
            ModelFormat.HUGGINGFACE,
            Backend.PYTHON,
            "the guarded sequence classifier in a generated model.py, one logit per label",
        ),
        ServedPath(
            Task.CLASSIFICATION,
            ModelFormat.HUGGINGFACE,
            Backend.PYTORCH,
            "the guarded classifier exported to TorchScript, behind a tokenizer ensemble",
        ),
        ServedPath(
            Task.CLASSIFICATION,
            ModelFormat.HUGGINGFACE,
            Backend.ONNXRUNTIME,
            "the guarded classifier exported to ONNX, behind a tokenizer ensemble",
        ),
        ServedPath(
            Task.RERANKING,
            ModelFormat.HUGGINGFACE,
            Backend.PYTHON,
            "the guarded cross-encoder in a generated model.py, a score per query-document pair",
        ),
        *(
            ServedPath(
                task,
                ModelFormat.ONNX,
                Backend.PYTHON,
                "the user's ONNX file as given (or at onnxruntime's guarded int8), run by "
                "onnxruntime in a generated model.py behind the tokenizer shipped with it",
            )
            for task in (Task.EMBEDDING, Task.CLASSIFICATION, Task.RERANKING)
        ),
        *(
            ServedPath(
                task,
                ModelFormat.TORCHSCRIPT,
                Backend.PYTHON,
                "the user's TorchScript file as given, run by torch.jit in a generated model.py "
                "behind the tokenizer shipped with it",
            )
            for task in (Task.EMBEDDING, Task.CLASSIFICATION, Task.RERANKING)
        ),
    ),
    not_served={
        "task": {
            Task.GENERATION: (
                "generation needs an LLM backend (vLLM or TensorRT-LLM) on a GPU, "
                "which tenfold does not prepare"
            ),
        },
        "format": {
            ModelFormat.PYTHON: (
                "a user's own model.py is not loaded; with format huggingface tenfold generates "
                "the model.py itself"
            ),
        },
        "backend": {
            Backend.TENSORRT: (
                "tenfold builds no TensorRT engines; use python, pytorch or onnxruntime, "
                "which run on GPUs too"
            ),
            Backend.VLLM: "vllm serves generation, which tenfold does not prepare",
        },
    },
    guard_metrics={
        Task.EMBEDDING: (GuardMetric.COSINE,),
        Task.CLASSIFICATION: (GuardMetric.TOP1_AGREEMENT, GuardMetric.LOGIT_MSE),
        Task.RERANKING: (
            GuardMetric.RANK_AGREEMENT,
            GuardMetric.TOP1_AGREEMENT,
            GuardMetric.LOGIT_MSE,
        ),
    },
    gpu_only=frozenset({Backend.TENSORRT, Backend.VLLM}),
    # Measured on an NVIDIA H200 (torch 2.11, torchao 0.17.0) on 2026-11-30 with
    # tools/tenfold_tools/gpu_check.py: fp16, bf16, int8 and mixed passed prepare on every
    # backend; these two failed. The runtime image (Dockerfile.runtime) installs no torchao
    # either, so they would crash the init container after passing admission.
    precisions_not_served={
        Precision.FP8: (
            "on an H200 prepare could not save torchao's fp8 module for the python backend "
            "(torch.save: 'functools.partial' object has no attribute '__name__', torchao "
            "0.17.0, torch 2.11), and the runtime image installs no torchao; "
            "use bf16 or fp16 on Ada and Hopper GPUs"
        ),
        Precision.INT4: (
            "on an H200 torchao's int4 weight-only kernel failed to load (ImportError: Requires "
            "mslk >= 1.0.0), and the runtime image installs no torchao; use int8 or mixed"
        ),
    },
    engines=(
        EngineServing(
            Engine.ONNXRUNTIME,
            paths=(
                ServedPath(
                    Task.EMBEDDING,
                    ModelFormat.HUGGINGFACE,
                    Backend.PYTHON,
                    "the guarded encoder exported to ONNX (pooling inside the graph), run by "
                    "onnxruntime in a generated model.py",
                ),
                ServedPath(
                    Task.CLASSIFICATION,
                    ModelFormat.HUGGINGFACE,
                    Backend.PYTHON,
                    "the guarded classifier exported to ONNX, run by onnxruntime in a "
                    "generated model.py, one logit per label",
                ),
            ),
            # What the onnxruntime backend's export serves (runtime export.check_exportable).
            precisions=(Precision.FP32, Precision.INT8, Precision.MIXED),
            precision_reason=(
                "the model is exported to ONNX at fp32 and quantized by onnxruntime's dynamic "
                "int8, and onnxruntime's CPU kernels lack most fp16 and bf16 operators"
            ),
            gpu_reason=(
                "the runtime images carry onnxruntime's CPU build (no onnxruntime-gpu), so on a "
                "GPU node the model would run on its CPU; on a GPU, use backend onnxruntime "
                "(Triton's own, with CUDA) or the engine torch"
            ),
        ),
    ),
    cpu_only_formats={
        ModelFormat.ONNX: (
            "a user's ONNX file runs on the CPU build of onnxruntime inside the Python backend; "
            "on a GPU, use format huggingface with backend onnxruntime, which tenfold exports "
            "and guards itself"
        ),
        ModelFormat.TORCHSCRIPT: (
            "a user's TorchScript file runs on the CPU inside the Python backend (a traced file "
            "may hold the device it was traced on); on a GPU, use format huggingface with "
            "backend pytorch, which tenfold exports and guards itself"
        ),
    },
)
