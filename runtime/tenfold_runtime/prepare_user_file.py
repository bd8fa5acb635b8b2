"""`prepare` for a model file users bring (`format: onnx` or `torchscript`, Python backend).

The guard walks the spec's ladder with the file itself as the reference: the fp32 rung serves
the file as given (precision `as-provided`: tenfold did not make it and cannot say what it
computes in); for an ONNX file, int8 is onnxruntime's dynamic int8 of its weight MatMuls,
measured against the file on the calibration inputs; every other rung is skipped as
unsupported. The folder written is the Python backend's, with user_model.py.j2 as its model.py:

    <repository>/<model_name>/config.pbtxt            the operator's, with the file's width
    <repository>/<model_name>/tenfold-manifest.json   digest, precision, accuracy, attempts
    <repository>/<model_name>/1/model.py              runs the file (onnxruntime or torch.jit)
    <repository>/<model_name>/1/model.onnx|model.pt   the file (or its int8), external data beside
    <repository>/<model_name>/1/tokenizer/            the tokenizer shipped with it
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from tenfold.api.enums import ModelFormat, Precision, Task
from tenfold.api.prepare import PrepareSpec
from tenfold_runtime import builders, guard, user_file
from tenfold_runtime.calibration import calibration_inputs, query_group
from tenfold_runtime.errors import GuardRejectedError, PrepareError
from tenfold_runtime.repository import now, runtime_version, served_config, write_model_folder
from tenfold_runtime.sources import file_digest
from tenfold_runtime.user_file import AS_PROVIDED, UserFileError, UserModel

log = logging.getLogger(__name__)


# Why a rung other than the file as given (or an ONNX file's int8) is skipped.
UNSUPPORTED = {
    ModelFormat.ONNX: "a user's ONNX file is served as given (fp32 rung) or at onnxruntime's int8",
    ModelFormat.TORCHSCRIPT: (
        "a user's TorchScript file is compiled code that torch's quantizer cannot convert; it is "
        "served as given (fp32 rung)"
    ),
}


class UserFileLadder:
    """The guard's rungs for one user's file: as given, or (ONNX) onnxruntime's int8 of it."""

    def __init__(
        self, spec: PrepareSpec, model_dir: Path, reference: UserModel, scratch: Path
    ) -> None:
        self.spec, self.model_dir, self.reference = spec, model_dir, reference
        self.scratch = scratch
        self.texts = calibration_inputs(spec)
        self.group = query_group(self.texts) if spec.task is Task.RERANKING else None
        self.expected = reference.outputs(self.texts)
        # The file each accepted rung serves.
        self.files: dict[Precision, Path] = {}

    def measure(self, candidate: UserModel) -> guard.Accuracy:
        """The candidate's outputs against the file's own on the calibration inputs."""
        outputs = candidate.outputs(self.texts)
        return guard.measure(self.spec.guard.metric, self.expected, outputs, group=self.group)

    def attempt(self, precision: Precision) -> guard.Attempt:
        """Serve the file as given, or quantize and judge it; other precisions are skipped."""
        if precision is Precision.FP32:
            self.files[precision] = self.reference.path
            reason = "the file as given, which is the guard's reference: nothing was converted"
            return guard.Attempt(precision, True, reason, self.measure(self.reference))
        format = self.reference.format
        if precision is not Precision.INT8 or format is not ModelFormat.ONNX:
            reason = f"unsupported: {UNSUPPORTED[format]}, not converted to {precision}"
            return guard.Attempt(precision, accepted=False, reason=reason)
        started = time.monotonic()
        target = self.scratch / "int8.onnx"
        try:
            count = user_file.quantize_int8(self.reference.path, target)
            quantized = user_file.load_user_model(self.model_dir, self.spec.task, format, target)
        except UserFileError as error:
            return guard.Attempt(precision, accepted=False, reason=f"unsupported: {error}")
        accuracy = self.measure(quantized)
        accepted, reason = guard.verdict(
            accuracy, self.spec.guard.max_drop, self.spec.guard.max_worst_drop
        )
        details: dict[str, object] = {
            "int8_scheme": user_file.INT8_SCHEME,
            "quantized_matmuls": count,
            "seconds": round(time.monotonic() - started, 2),
        }
        if accepted:
            self.files[precision] = target
        log.info("guard: int8 of the user's file, drop %.4f -> %s", accuracy.drop, reason)
        return guard.Attempt(precision, accepted, reason, accuracy, details)


def served_precision(served: Precision) -> str:
    """What status.precision says: `as-provided` for the file as given."""
    return AS_PROVIDED if served is Precision.FP32 else str(served)


def prepare_user_file(
    spec: PrepareSpec, repository: Path, model_dir: Path, source_digest: str, started_at: str
) -> dict[str, object]:
    """Guard the user's file, write the Python-backend folder; returns the manifest."""
    try:
        reference = user_file.load_user_model(model_dir, spec.task, spec.format)
    except UserFileError as error:
        raise PrepareError(str(error)) from None
    log.info(
        "prepare: %s, inputs %s, %s pooling, %d wide",
        reference.path.name,
        list(reference.input_names),
        reference.pooling,
        reference.width,
    )
    scratch = repository / f".{spec.model_name}.user-file"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        ladder = UserFileLadder(spec, model_dir, reference, scratch)
        order = guard.ladder(spec.precision, spec.guard.fallback)
        decision = guard.walk_ladder(order, ladder.attempt)
        if decision.served is None:
            raise GuardRejectedError(decision)
        return write_user_model(
            repository,
            spec,
            reference,
            ladder.files[decision.served],
            decision,
            source_digest,
            started_at,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_user_model(
    repository: Path,
    spec: PrepareSpec,
    reference: UserModel,
    served_file: Path,
    decision: guard.Decision,
    source_digest: str,
    started_at: str,
) -> dict[str, object]:
    """The Python-backend folder around the served file, and its manifest."""
    assert decision.served is not None  # checked by the caller
    precision = served_precision(decision.served)
    version = runtime_version()
    model_py = builders.render_user_model_py(
        model_name=spec.model_name,
        task=spec.task,
        precision=precision,
        max_length=reference.max_length,
        file_format=reference.format,
        graph_inputs=reference.input_names,
        pooling=reference.pooling,
        runtime_version=version,
    )

    def fill(version_dir: Path) -> None:
        (version_dir / "model.py").write_text(model_py)
        user_file.copy_served_file(served_file, version_dir, reference.format)
        reference.tokenizer.save_pretrained(version_dir / builders.TOKENIZER_DIR)  # type: ignore[attr-defined]

    inputs, outputs = builders.served_io(spec.task, reference.width)
    manifest = builders.build_manifest(
        spec=spec,
        source_digest=source_digest,
        decision=decision,
        runtime_version=version,
        started_at=started_at,
        finished_at=now(),
        inputs=inputs,
        outputs=outputs,
        extra={
            "artefact": {
                "format": str(reference.format),
                "file": f"{spec.model_name}/1/{builders.USER_FILES[reference.format]}",
                "digest": file_digest(served_file),
                "graph_inputs": list(reference.input_names),
                "pooling": reference.pooling,
            }
        },
    )
    manifest["precision_served"] = precision
    config_text = served_config(spec.config_pbtxt, spec.task, reference.width)
    final = write_model_folder(repository, spec.model_name, config_text, fill, manifest)
    log.info("prepare: wrote %s (the user's %s file, %s)", final, reference.format, precision)
    return manifest
