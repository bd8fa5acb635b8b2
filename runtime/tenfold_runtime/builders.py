"""Pure builders for what `prepare` writes: the generated model.py and the manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace

import jinja2
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.enums import Backend, ModelFormat, Precision, Task
from tenfold.api.prepare import (
    SEQUENCE_BUCKETS_PARAMETER,
    TOKEN_IDS,
    TOKEN_MASK,
    PrepareSpec,
    encoder_output,
)
from tenfold.api.triton_io import TASK_IO, TensorSpec
from tenfold_runtime.guard import Decision

# The input every generated model.py reads (the task's text; batch dimension implicit).
TEXT_INPUT = TASK_IO[Task.EMBEDDING].inputs[0].name
ARTEFACT_FILE = "model.pt"
# A user's own file in the Python backend's version folder, by its format.
USER_FILES = {ModelFormat.ONNX: "model.onnx", ModelFormat.TORCHSCRIPT: "model.pt"}
TOKENIZER_DIR = "tokenizer"
# Extra site directories for the stub's isolated interpreter (set by the local runner only).
SITE_DIRS_ENV = "TENFOLD_SITE_DIRS"
MANIFEST_SCHEMA = "tenfold.dev/prepare-manifest/v1"


def output_name(task: Task) -> str:
    """The tensor the served model of `task` answers with (EMBEDDING, LOGITS)."""
    return TASK_IO[task].outputs[0].name


def output_dims(task: Task, width: int) -> dict[str, tuple[int, ...]]:
    """The served shape of a `task` model whose rows are `width` wide, by tensor name.

    The one place the served contract is taken from the loaded model: the served output and
    the exported encoder's output, which the ensemble passes through. The config.pbtxt files
    prepare writes and the manifest's io all come from here.
    """
    return {output_name(task): (width,), encoder_output(task): (width,)}


def served_io(task: Task, width: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of the `task` model as served, its output `width` wide."""
    task_io = TASK_IO[task]
    dims = output_dims(task, width)
    outputs = [replace(t, dims=dims.get(t.name, t.dims)) for t in task_io.outputs]
    return list(task_io.inputs), outputs


def with_output_dims(config_text: str, dims: Mapping[str, Sequence[int]]) -> str:
    """The operator's config.pbtxt with the named outputs set to the model's own dims.

    The operator renders the embedding width as -1 (it cannot know it; see api/triton_io.py);
    prepare has loaded the model, so the config it writes, and with it Triton's model
    metadata, states the real width. Other fields and tensors are left as rendered.
    """
    config = text_format.Parse(config_text, mc.ModelConfig())
    for output in config.output:
        if output.name in dims:
            del output.dims[:]
            output.dims.extend(dims[output.name])
    return text_format.MessageToString(config)


def io_json(tensor: TensorSpec) -> dict[str, object]:
    """A tensor declaration as JSON (Triton's own field names)."""
    return {"name": tensor.name, "data_type": tensor.data_type, "dims": list(tensor.dims)}


def _environment() -> jinja2.Environment:
    loader = jinja2.PackageLoader("tenfold_runtime", "templates")
    # StrictUndefined: a missing variable is a bug in prepare, not an empty string in Triton.
    return jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def render_model_py(
    *,
    model_name: str,
    task: Task,
    precision: Precision,
    max_length: int,
    device: str,
    runtime_version: str,
) -> str:
    """The Python-backend model.py for a model of `task` prepared by this runtime."""
    return _render(
        "model.py.j2",
        **_python_model(model_name, task, precision, max_length, runtime_version),
        device=device,
        artefact=ARTEFACT_FILE,
    )


def render_user_model_py(
    *,
    model_name: str,
    task: Task,
    precision: str,
    max_length: int,
    file_format: ModelFormat,
    graph_inputs: Sequence[str],
    pooling: str,
    runtime_version: str,
    token_names: Sequence[str] | None = None,
) -> str:
    """The Python-backend model.py that runs a user's ONNX (onnxruntime) or TorchScript
    (torch.jit) file, saved in the version folder as USER_FILES[file_format].

    `token_names` are the tokenizer outputs that feed the graph's inputs, in their order;
    None: the inputs' own names (a user's file takes `input_ids` and `attention_mask`).
    """
    return _render(
        "user_model.py.j2",
        **_python_model(model_name, task, precision, max_length, runtime_version),
        device="cpu",
        artefact=USER_FILES[file_format],
        file_format=str(file_format),
        graph_inputs=list(graph_inputs),
        token_names=list(token_names or graph_inputs),
        pooling=pooling,
    )


def _python_model(
    model_name: str, task: Task, precision: str, max_length: int, runtime_version: str
) -> dict[str, object]:
    """The variables every Python-backend model.py of `task` takes."""
    if task not in PYTHON_TASKS:
        raise ValueError(f"the Python backend template serves {PYTHON_TASKS}, not {task}")
    return {
        "model_name": model_name,
        "task": str(task),
        "precision": str(precision),
        "max_length": max_length,
        "runtime_version": runtime_version,
        "output_name": output_name(task),
        "input_names": [tensor.name for tensor in TASK_IO[task].inputs],
    }


# The tasks model.py.j2 serves: an embedding is pooled, a classifier answers its logits, a
# reranker its one logit per query-document pair.
PYTHON_TASKS = (Task.EMBEDDING, Task.CLASSIFICATION, Task.RERANKING)


def _render(template: str, **variables: object) -> str:
    """A template with the names every generated model.py shares."""
    shared = {
        "input_name": TEXT_INPUT,
        "tokenizer_dir": TOKENIZER_DIR,
        "site_dirs_env": SITE_DIRS_ENV,
    }
    return _environment().get_template(template).render(**shared, **variables)


def render_tokenizer_py(
    *,
    model_name: str,
    encoder_backend: Backend,
    max_length: int,
    default_buckets: Sequence[int],
    runtime_version: str,
) -> str:
    """The Python-backend tokenizer step of the ensemble that serves an exported encoder."""
    return _render(
        "tokenizer.py.j2",
        model_name=model_name,
        encoder_backend=str(encoder_backend),
        max_length=max_length,
        default_buckets=list(default_buckets),
        buckets_parameter=SEQUENCE_BUCKETS_PARAMETER,
        runtime_version=runtime_version,
        ids_name=TOKEN_IDS,
        mask_name=TOKEN_MASK,
    )


def spec_digest(spec: PrepareSpec) -> str:
    """A stable hash of the spec, so a re-run of an unchanged spec can be skipped."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def build_manifest(
    *,
    spec: PrepareSpec,
    source_digest: str,
    decision: Decision,
    runtime_version: str,
    started_at: str,
    finished_at: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """The manifest recorded next to the model: what was asked, measured and served."""
    accepted = decision.attempts[-1] if decision.ok else None
    accuracy = accepted.to_json().get("accuracy") if accepted is not None else None
    return {
        "schema": MANIFEST_SCHEMA,
        "model_name": spec.model_name,
        "model_version": spec.version,
        "source": spec.source,
        "source_digest": source_digest,
        "spec_digest": spec_digest(spec),
        "task": str(spec.task),
        "device": spec.device,
        "precision_requested": str(spec.precision),
        "precision_served": None if decision.served is None else str(decision.served),
        "accuracy": accuracy,
        "guard": {
            "metric": str(spec.guard.metric),
            "max_drop": spec.guard.max_drop,
            "decision": "accepted" if decision.ok else "rejected",
            "attempts": [attempt.to_json() for attempt in decision.attempts],
        },
        "io": {
            "inputs": [io_json(tensor) for tensor in inputs],
            "outputs": [io_json(tensor) for tensor in outputs],
        },
        "runtime_version": runtime_version,
        "started_at": started_at,
        "finished_at": finished_at,
        **(extra or {}),
    }


# Kubernetes keeps at most 4096 bytes of a container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096


def termination_report(manifest: dict[str, object]) -> str:
    """The prepare result as the init container's termination message.

    The operator reads it from the pod status (status.precision, status.accuracy): the one
    way a pod's result reaches the API without giving pods write access to it.
    """
    guard = manifest.get("guard") or {}
    attempts = guard.get("attempts", []) if isinstance(guard, dict) else []
    decision = "; ".join(
        f"{a.get('precision')} {'accepted' if a.get('accepted') else 'rejected'}: {a.get('reason')}"
        for a in attempts
        if isinstance(a, dict)
    )
    report = {
        "precision_requested": manifest.get("precision_requested"),
        "precision_served": manifest.get("precision_served"),
        "accuracy": manifest.get("accuracy"),
        "decision": decision[:2048],
    }
    return json.dumps(report, sort_keys=True)[:TERMINATION_MESSAGE_LIMIT]
