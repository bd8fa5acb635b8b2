"""How much scratch disk a replica's pod may write: the `sizeLimit` of its emptyDirs.

The spec states no model size, but it states the memory the model is served from, and
the model cannot be larger: `tenfold-runtime prepare` loads the full-precision weights
there to run the accuracy guard, and Triton loads the served artefact there. So the
limits follow from that memory (`model_memory_bytes`):

- models (`/models`): twice that memory. The served repository (weights, tokenizer,
  config, manifest) fits in it once; while prepare runs, the scratch export beside it
  holds the fp32 ONNX graph and its int8 copy, as large again at most.
- /tmp: that memory plus 1 GiB. prepare fetches remote weights (hf://, s3://, gs://,
  package://) under /tmp, at most the full-precision model; HOME is /tmp, so library
  caches (Hugging Face, torch) and the sidecar's and Triton's temporary files land there.

A bound the served model can never reach only stops a runaway writer from filling the
node's disk: the kubelet evicts the pod rather than the node running out of space.
"""

from __future__ import annotations

from tenfold.api.catalog import CPU, GIB, GpuCatalog
from tenfold.api.quantity import parse_quantity
from tenfold.api.spec import InferenceServiceSpec

_MI = 1024 * 1024
# Library caches and temporary files under /tmp besides the fetched weights.
TMP_EXTRA_BYTES = GIB


def model_memory_bytes(spec: InferenceServiceSpec, catalog: GpuCatalog) -> int:
    """The memory the model is loaded into: the replica's memory on cpu, else its GPUs'."""
    gpu_type = spec.hardware.gpu_type
    if gpu_type == CPU:
        return int(parse_quantity(spec.hardware.memory))
    return catalog.gpus[gpu_type].memory_gib * GIB * spec.hardware.gpus_per_replica


def mebibytes(size: int) -> str:
    """`size` bytes as a quantity in whole MiB, rounded up."""
    return f"{(size + _MI - 1) // _MI}Mi"


def models_size_limit(spec: InferenceServiceSpec, catalog: GpuCatalog) -> str:
    """`sizeLimit` of the models emptyDir: the served repository plus prepare's scratch."""
    return mebibytes(2 * model_memory_bytes(spec, catalog))


def tmp_size_limit(spec: InferenceServiceSpec, catalog: GpuCatalog) -> str:
    """`sizeLimit` of /tmp: fetched full-precision weights plus library caches."""
    return mebibytes(model_memory_bytes(spec, catalog) + TMP_EXTRA_BYTES)
