"""`tenfold-runtime prepare`: model source -> guarded precision -> Triton model repository.

Layout written for the Python backend (Triton ignores the extra files):

    <repository>/<model_name>/config.pbtxt            the operator's, with the model's width
    <repository>/<model_name>/tenfold-manifest.json   digest, precision, accuracy, attempts
    <repository>/<model_name>/1/model.py              generated from templates/model.py.j2
    <repository>/<model_name>/1/model.pt              the converted torch module
    <repository>/<model_name>/1/tokenizer/            tokenizer files

With `engine: onnxruntime` the Python backend's version folder holds the ONNX file the guard
measured instead of model.pt, and model.py (templates/user_model.py.j2) runs it on onnxruntime.

For the pytorch and onnxruntime backends `<model_name>` is an ensemble (config and manifest
only) of two steps, each with the operator's config.pbtxt (the encoder's with the width):

    <repository>/<model_name>-tokenizer/1/            model.py (tokenizer.py.j2), tokenizer/
    <repository>/<model_name>-encoder/1/model.pt      TorchScript, or model.onnx for ONNX
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format
from torch import nn
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.enums import Backend, Engine, GuardMetric, ModelFormat, Precision, Task
from tenfold.api.prepare import (
    EXPORTED_BACKENDS,
    SEQUENCE_BUCKETS_PARAMETER,
    TOKEN_IDS,
    TOKEN_MASK,
    PrepareSpec,
    encoder_model_name,
    tokenizer_model_name,
)
from tenfold.api.serving import SERVING
from tenfold.constants import PREPARE_MANIFEST_FILE
from tenfold_runtime import builders, export, guard, quantize
from tenfold_runtime.calibration import calibration_inputs, query_group, split_calibration
from tenfold_runtime.errors import GuardRejectedError, PrepareError
from tenfold_runtime.modeling import LoadedModel, load_model
from tenfold_runtime.prepare_user_file import prepare_user_file
from tenfold_runtime.repository import (
    VERSION_DIR,
    now,
    runtime_version,
    served_config,
    write_model_folder,
)
from tenfold_runtime.sources import digest_weights, fetch_source, file_digest
from tenfold_runtime.user_file import POOLING_NONE, USER_FILE_FORMATS

log = logging.getLogger(__name__)

# Beyond this share of fp32 layers, "mixed" no longer saves enough to be worth serving.
MAX_KEPT_SHARE = 0.5
# Inputs used to rank layer sensitivity (one forward pass per Linear layer).
SENSITIVITY_SAMPLES = 16


@dataclass(frozen=True)
class ExportTarget:
    """An exported backend's artefacts: which backend, a scratch folder, the tokenizer's buckets."""

    backend: Backend
    folder: Path
    buckets: tuple[int, ...]


@dataclass
class GuardRun:
    """The guard's decision and the module that passed it (None when none did)."""

    decision: guard.Decision
    state: GuardWorkbench

    @property
    def module(self) -> nn.Module | None:
        """The module at the served precision; None when every rung was rejected."""
        served = self.decision.served
        return None if served is None else self.state.modules.get(served)


@dataclass
class GuardWorkbench:
    """The accuracy guard's workbench: the fp32 model and its reference outputs, the rules,
    and the candidates (modules and exported artefacts) built and measured against them."""

    loaded: LoadedModel
    texts: list[str]
    metric: GuardMetric
    max_drop: float
    int8_scheme: quantize.Int8Scheme
    keep_patterns: Sequence[str]
    device: str
    # Where exported artefacts are built and measured; None: the Python backend serves
    # the torch module itself, which is then what the guard measures.
    target: ExportTarget | None = None
    # A reranker's documents per query: its scores are compared query by query.
    group: int | None = None
    # Where mixed chooses its fp32 layers, disjoint from `texts` (where every rung is judged),
    # so that nothing is accepted on the data it was selected on. Empty: `texts` itself.
    selection: list[str] = field(default_factory=list)
    # The largest drop allowed in the worst sample; None: only the mean is bounded.
    max_worst_drop: float | None = None
    reference: np.ndarray = field(init=False)
    selection_reference: np.ndarray = field(init=False)
    modules: dict[Precision, nn.Module] = field(default_factory=dict)
    artefacts: dict[Precision, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reference = self.outputs(self.loaded.model)
        self.selection = self.selection or self.texts
        self.selection_reference = self.outputs(self.loaded.model, self.selection)

    def outputs(self, module: nn.Module, texts: Sequence[str] | None = None) -> np.ndarray:
        """What the module serves for `texts` (default: all calibration texts)."""
        return self.loaded.outputs(module, self.texts if texts is None else texts)

    def accuracy(self, module: nn.Module) -> guard.Accuracy:
        """The module measured against the fp32 reference."""
        return self.measure(self.reference, self.outputs(module))

    def measure(self, reference: np.ndarray, outputs: np.ndarray) -> guard.Accuracy:
        """`outputs` against `reference` under the guard's metric (per query for a reranker)."""
        return guard.measure(self.metric, reference, outputs, group=self.group)

    def served_accuracy(
        self, precision: Precision, module: nn.Module, keep: list[str], details: dict[str, object]
    ) -> guard.Accuracy:
        """Measure what will be served: the module, or the artefact exported from it."""
        if self.target is None:
            return self.accuracy(module)
        folder = self.target.folder / str(precision)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        example = export.example_inputs(self.loaded.tokenizer, self.loaded.max_length)
        job = export.ExportJob(
            module=module,
            fp32_module=self.loaded.model,
            precision=precision,
            kept_layers=keep,
            linear_names=quantize.linear_names(self.loaded.model),
            example=tuple(t.to(self.device) for t in example),
            folder=folder,
            device=self.device,
            task=self.loaded.task,
        )
        path, run = export.export_artefact(self.target.backend, job)
        outputs = export.artefact_outputs(
            run,
            self.loaded.tokenizer,
            self.texts,
            buckets=self.target.buckets,
            max_length=self.loaded.max_length,
        )
        self.artefacts[precision] = path
        details["measured"] = f"{self.target.backend} artefact {path.name}"
        return self.measure(self.reference, outputs)

    def int8_scheme_served(self) -> str:
        """Whose int8 the served artefact uses: onnxruntime's for ONNX, else torch's scheme."""
        if self.target is not None and self.target.backend is Backend.ONNXRUNTIME:
            return export.ONNX_INT8_SCHEME
        return str(self.int8_scheme)

    def keep_for_mixed(self) -> list[str]:
        """Layers left at fp32 under mixed: the spec's patterns, or the most sensitive ones."""
        names = quantize.linear_names(self.loaded.model)
        if self.keep_patterns:
            return quantize.matching(names, self.keep_patterns)
        started = time.monotonic()
        # Ranking needs only the order of the layers, so a slice of the selection split is
        # enough; the kept set is then chosen on the whole selection split, and judged (in
        # `attempt`) on the held-out split only.
        size = max(self.group or 1, SENSITIVITY_SAMPLES // (self.group or 1) * (self.group or 1))
        probe, probe_reference = self.selection[:size], self.selection_reference[:size]
        sensitivity = quantize.layer_sensitivity(
            self.loaded.model,
            names,
            self.int8_scheme,
            lambda m: self.measure(probe_reference, self.outputs(m, probe)).drop,
        )
        work = quantize.to_int8(self.loaded.model, self.int8_scheme)

        def drop_with_kept(keep: list[str]) -> float:
            # The kept list only grows: put back the fp32 layers not restored yet.
            for name in keep:
                if not isinstance(work.get_submodule(name), nn.Linear):
                    fp32 = copy.deepcopy(self.loaded.model.get_submodule(name))
                    quantize.replace_module(work, name, fp32)
            outputs = self.outputs(work, self.selection)
            return self.measure(self.selection_reference, outputs).drop

        kept, drop = quantize.choose_kept_layers(
            quantize.most_sensitive_first(sensitivity),
            drop_with_kept,
            self.max_drop,
            max_kept=int(len(names) * MAX_KEPT_SHARE),
        )
        log.info(
            "mixed: kept %d of %d layers at fp32 (drop %.4f) in %.1fs",
            len(kept),
            len(names),
            drop,
            time.monotonic() - started,
        )
        return kept

    def attempt(self, precision: Precision) -> guard.Attempt:
        """Convert to `precision`, measure it and judge it; failures become rejections."""
        started = time.monotonic()
        try:
            quantize.check_device(self.device)
            quantize.check_supported(precision, self.device, self.int8_scheme)
            if self.target is not None:
                export.check_exportable(self.target.backend, precision)
            keep = self.keep_for_mixed() if precision is Precision.MIXED else []
            module = quantize.convert(
                self.loaded.model, precision, int8_scheme=self.int8_scheme, keep=keep
            )
        except quantize.UnsupportedPrecisionError as error:
            log.warning("guard: %s skipped: %s", precision, error)
            return guard.Attempt(precision, accepted=False, reason=f"unsupported: {error}")
        details: dict[str, object] = {}
        try:
            accuracy = self.served_accuracy(precision, module, keep, details)
        except export.ExportError as error:
            log.warning("guard: %s export failed: %s", precision, error)
            return guard.Attempt(precision, accepted=False, reason=f"export failed: {error}")
        accepted, reason = guard.verdict(accuracy, self.max_drop, self.max_worst_drop)
        details["seconds"] = round(time.monotonic() - started, 2)
        if precision in (Precision.INT8, Precision.MIXED):
            details["int8_scheme"] = self.int8_scheme_served()
        if precision is Precision.MIXED:
            details["kept_fp32_layers"] = keep
            details["kept_chosen_on"] = len(self.selection)
        log.info(
            "guard: %s mean %.4f min %.4f -> %s (%s)",
            precision,
            accuracy.mean,
            accuracy.min,
            "accept" if accepted else "reject",
            reason,
        )
        if accepted:
            self.modules[precision] = module
        return guard.Attempt(precision, accepted, reason, accuracy, details)


def run_guard(
    loaded: LoadedModel,
    spec: PrepareSpec,
    *,
    int8_scheme: quantize.Int8Scheme,
    texts: list[str],
    target: ExportTarget | None = None,
) -> GuardRun:
    """Walk the spec's ladder from its precision and return the first module that passes."""
    group = query_group(texts) if spec.task is Task.RERANKING else None
    selection, held_out = split_calibration(texts, group or 1)
    state = GuardWorkbench(
        loaded=loaded,
        texts=held_out,
        metric=spec.guard.metric,
        max_drop=spec.guard.max_drop,
        int8_scheme=int8_scheme,
        keep_patterns=spec.keep_higher_precision,
        device=spec.device,
        target=target,
        group=group,
        selection=selection,
        max_worst_drop=spec.guard.max_worst_drop,
    )
    order = guard.ladder(spec.precision, spec.guard.fallback)
    return GuardRun(decision=guard.walk_ladder(order, state.attempt), state=state)


def check_servable(spec: PrepareSpec) -> None:
    """Refuse a spec this runtime cannot serve, in admission's words.

    The apiserver refuses such specs already (the same table feeds its CEL rules); this
    catches a spec written by hand or by an operator older than the runtime.
    """
    refused = SERVING.refusals(
        spec.task,
        spec.format,
        spec.backend,
        spec.guard.metric,
        gpu=spec.device != "cpu",
        precision=spec.precision,
        fallback=spec.guard.fallback,
        engine=spec.engine,
    )
    if refused:
        reasons = "; ".join(f"spec{r.field_path}: {r.reason}" for r in refused)
        raise PrepareError(f"this runtime cannot serve the spec: {reasons}")


def existing_manifest(model_dir: Path, spec: PrepareSpec) -> dict[str, object] | None:
    """The manifest of an earlier successful run of this very spec, if there is one.

    An init container runs again when the pod restarts; the emptyDir survives, so an
    unchanged spec need not be quantized and measured twice.
    """
    path = model_dir / PREPARE_MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("spec_digest") == builders.spec_digest(spec) and manifest.get(
        "precision_served"
    ):
        return dict(manifest)
    return None


def write_python_model(
    repository: Path,
    spec: PrepareSpec,
    module: nn.Module,
    loaded: LoadedModel,
    model_py: str,
    manifest: dict[str, object],
) -> Path:
    """The Python-backend model folder: model.py, the pickled module and the tokenizer."""

    def fill(version_dir: Path) -> None:
        (version_dir / "model.py").write_text(model_py)
        # A whole pickled module: quantized layers keep their packed int8 weights, and
        # model.py needs no tenfold code to rebuild them.
        torch.save(module, version_dir / builders.ARTEFACT_FILE)
        loaded.tokenizer.save_pretrained(version_dir / builders.TOKENIZER_DIR)  # type: ignore[attr-defined]

    config_text = served_config(spec.config_pbtxt, loaded.task, loaded.output_width)
    return write_model_folder(repository, spec.model_name, config_text, fill, manifest)


# The exported graph's inputs, and the tokenizer outputs that feed them in model.py.
ONNX_ENGINE_INPUTS = {TOKEN_IDS: "input_ids", TOKEN_MASK: "attention_mask"}


def served_artefact(run: GuardRun, spec: PrepareSpec) -> Path:
    """The exported file the guard measured and accepted."""
    served = run.decision.served
    artefact = run.state.artefacts.get(served) if served is not None else None
    if artefact is None:
        raise PrepareError(f"the guard accepted {served} but left no {spec.backend} artefact")
    return artefact


def onnx_engine_artefact(spec: PrepareSpec, run: GuardRun) -> dict[str, object]:
    """The manifest's record of the ONNX file served by engine onnxruntime."""
    return {
        "backend": str(spec.backend),
        "engine": str(spec.engine),
        "file": f"{spec.model_name}/{VERSION_DIR}/{builders.USER_FILES[ModelFormat.ONNX]}",
        "digest": file_digest(served_artefact(run, spec)),
        "graph_inputs": list(ONNX_ENGINE_INPUTS),
    }


def write_onnx_engine_model(
    repository: Path, spec: PrepareSpec, run: GuardRun, manifest: dict[str, object], version: str
) -> Path:
    """The Python-backend folder serving the guarded ONNX file with onnxruntime in-process:
    the file the guard measured (moved, not exported again), the tokenizer and model.py."""
    artefact, loaded = served_artefact(run, spec), run.state.loaded
    model_py = builders.render_user_model_py(
        model_name=spec.model_name,
        task=spec.task,
        precision=str(run.decision.served),
        max_length=loaded.max_length,
        file_format=ModelFormat.ONNX,
        graph_inputs=list(ONNX_ENGINE_INPUTS),
        token_names=list(ONNX_ENGINE_INPUTS.values()),
        # The export pools (or ends in the head) inside the graph: rows come out served.
        pooling=POOLING_NONE,
        runtime_version=version,
    )

    def fill(version_dir: Path) -> None:
        (version_dir / "model.py").write_text(model_py)
        shutil.move(artefact, version_dir / builders.USER_FILES[ModelFormat.ONNX])
        loaded.tokenizer.save_pretrained(version_dir / builders.TOKENIZER_DIR)  # type: ignore[attr-defined]

    config_text = served_config(spec.config_pbtxt, loaded.task, loaded.output_width)
    return write_model_folder(repository, spec.model_name, config_text, fill, manifest)


def step_config(spec: PrepareSpec, name: str) -> str:
    """The operator's config.pbtxt for ensemble step `name`."""
    try:
        return spec.step_configs[name]
    except KeyError:
        raise PrepareError(
            f"the prepare spec has no config for ensemble step {name!r}; "
            f"backend {spec.backend} needs one (is the operator older than the runtime?)"
        ) from None


def sequence_buckets(config_text: str) -> tuple[int, ...]:
    """The token-length buckets the tokenizer step will use (its config's parameter)."""
    config = text_format.Parse(config_text, mc.ModelConfig())
    parameter = config.parameters.get(SEQUENCE_BUCKETS_PARAMETER)
    return export.parse_buckets(parameter.string_value if parameter is not None else "")


def write_exported_steps(
    repository: Path, spec: PrepareSpec, run: GuardRun, version: str
) -> dict[str, object]:
    """Write the tokenizer and encoder steps; returns the artefact's record for the manifest.

    The encoder file is the very artefact the guard measured (moved, not exported again).
    """
    artefact, loaded, target = served_artefact(run, spec), run.state.loaded, run.state.target
    if target is None:
        raise PrepareError(f"backend {spec.backend} prepared without an export target")
    tokenizer_name = tokenizer_model_name(spec.model_name)
    encoder_name = encoder_model_name(spec.model_name)
    tokenizer_config = step_config(spec, tokenizer_name)

    def fill_encoder(version_dir: Path) -> None:
        shutil.move(artefact, version_dir / artefact.name)

    def fill_tokenizer(version_dir: Path) -> None:
        model_py = builders.render_tokenizer_py(
            model_name=spec.model_name,
            encoder_backend=spec.backend,
            max_length=loaded.max_length,
            default_buckets=export.DEFAULT_SEQUENCE_BUCKETS,
            runtime_version=version,
        )
        (version_dir / "model.py").write_text(model_py)
        loaded.tokenizer.save_pretrained(version_dir / builders.TOKENIZER_DIR)  # type: ignore[attr-defined]

    digest = file_digest(artefact)
    width = loaded.output_width
    encoder_config = served_config(step_config(spec, encoder_name), loaded.task, width)
    encoder = write_model_folder(repository, encoder_name, encoder_config, fill_encoder)
    write_model_folder(repository, tokenizer_name, tokenizer_config, fill_tokenizer)
    return {
        "backend": str(spec.backend),
        "file": str((encoder / VERSION_DIR / artefact.name).relative_to(repository)),
        "digest": digest,
        "steps": [tokenizer_name, encoder_name],
        "sequence_buckets": list(target.buckets),
    }


def prepare(
    spec: PrepareSpec,
    repository: Path | None = None,
    *,
    int8_scheme: quantize.Int8Scheme | None = None,
    cache_dir: Path = Path("/tmp/tenfold-sources"),
    force: bool = False,
) -> dict[str, object]:
    """Build the Triton model folder for `spec`; returns the manifest.

    Raises GuardRejectedError when no precision passes and PrepareError for specs this
    runtime cannot serve.
    """
    started_at = now()
    repository = Path(repository or spec.repository)
    check_servable(spec)
    if not force and (manifest := existing_manifest(repository / spec.model_name, spec)):
        log.info("prepare: %s is already prepared for this spec; nothing to do", spec.model_name)
        return manifest
    scheme = int8_scheme or quantize.default_int8_scheme(spec.device)

    log.info("prepare: fetching %s", spec.source)
    model_dir = fetch_source(spec.source, cache_dir)
    source_digest = digest_weights(model_dir)
    if spec.format in USER_FILE_FORMATS:
        return prepare_user_file(spec, repository, model_dir, source_digest, started_at)
    log.info("prepare: loading %s (%s)", model_dir, source_digest)
    try:
        loaded = load_model(model_dir, spec.task, spec.device)
    except ValueError as error:  # the model does not fit the task (a reranker's labels)
        raise PrepareError(str(error)) from error
    texts = calibration_inputs(spec)
    log.info("prepare: guarding %s on %d calibration inputs", spec.precision, len(texts))
    scratch = repository / f".{spec.model_name}.export"
    try:
        target = export_target(spec, scratch)
        run = run_guard(loaded, spec, int8_scheme=scheme, texts=texts, target=target)
        if run.module is None or run.decision.served is None:
            raise GuardRejectedError(run.decision)
        return write_model(repository, spec, run, source_digest, started_at)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def export_target(spec: PrepareSpec, scratch: Path) -> ExportTarget | None:
    """Where an exported backend's artefacts are built; None for the Python backend on torch.

    With `engine: onnxruntime` the Python backend serves the onnxruntime backend's export,
    fed as its model.py feeds it: each batch padded to its longest input (no buckets).
    """
    if spec.backend is Backend.PYTHON and spec.engine is Engine.ONNXRUNTIME:
        return ExportTarget(backend=Backend.ONNXRUNTIME, folder=scratch, buckets=())
    if spec.backend not in EXPORTED_BACKENDS:
        return None
    buckets = sequence_buckets(step_config(spec, tokenizer_model_name(spec.model_name)))
    return ExportTarget(backend=spec.backend, folder=scratch, buckets=buckets)


def write_model(
    repository: Path, spec: PrepareSpec, run: GuardRun, source_digest: str, started_at: str
) -> dict[str, object]:
    """Write the guarded model into the repository; returns the manifest."""
    loaded, served = run.state.loaded, run.decision.served
    assert run.module is not None and served is not None  # checked by the caller

    version = runtime_version()
    extra: dict[str, object] = {}
    if spec.backend in EXPORTED_BACKENDS:
        extra["artefact"] = write_exported_steps(repository, spec, run, version)
    elif run.state.target is not None:
        extra["artefact"] = onnx_engine_artefact(spec, run)
    inputs, outputs = builders.served_io(loaded.task, loaded.output_width)
    manifest = builders.build_manifest(
        spec=spec,
        source_digest=source_digest,
        decision=run.decision,
        runtime_version=version,
        started_at=started_at,
        finished_at=now(),
        inputs=inputs,
        outputs=outputs,
        extra=extra,
    )
    if spec.backend in EXPORTED_BACKENDS:
        # The ensemble itself has no files, only the empty version folder Triton expects.
        config_text = served_config(spec.config_pbtxt, loaded.task, loaded.output_width)
        final = write_model_folder(
            repository, spec.model_name, config_text, lambda _: None, manifest
        )
    elif run.state.target is not None:  # engine onnxruntime: the exported file, in-process
        final = write_onnx_engine_model(repository, spec, run, manifest, version)
    else:
        model_py = builders.render_model_py(
            model_name=spec.model_name,
            task=spec.task,
            precision=served,
            max_length=loaded.max_length,
            device=spec.device,
            runtime_version=version,
        )
        final = write_python_model(repository, spec, run.module, loaded, model_py, manifest)
    log.info("prepare: wrote %s (served %s, %s backend)", final, served, spec.backend)
    return manifest
