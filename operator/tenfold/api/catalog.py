"""The GPU catalog: typed view of `gpu_catalog.yaml` plus price lookups.

The catalog is data, not code: the YAML names each GPU type, its node labels, what precisions
it can serve and its list prices. Everything that needs a price or a capability asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tenfold.api.enums import Precision

CPU = "cpu"
GIB = 1024**3


class HourlyPrice(BaseModel):
    """USD per hour, on-demand and spot."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    on_demand: float = Field(alias="onDemand", ge=0)
    spot: float = Field(ge=0)

    def pick(self, spot: bool) -> float:
        """The price that applies to a replica placed on spot or on-demand capacity."""
        return self.spot if spot else self.on_demand


class GpuType(BaseModel):
    """One GPU product line as the scheduler and the price list see it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: str
    product_labels: tuple[str, ...] = Field(alias="productLabels")
    memory_gib: int = Field(alias="memoryGiB")
    architecture: str
    precisions: frozenset[Precision]
    price: HourlyPrice


class CpuPricing(BaseModel):
    """CPU-only replicas pay for vCPUs and memory."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    precisions: frozenset[Precision]
    vcpu_hour: HourlyPrice = Field(alias="vcpuHour")
    gib_hour: HourlyPrice = Field(alias="gibHour")


class GpuCatalog(BaseModel):
    """All GPU types plus CPU pricing."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    source: str
    cpu: CpuPricing
    gpus: Mapping[str, GpuType]

    def type_names(self) -> list[str]:
        """Every valid value of spec.hardware.gpuType, CPU first."""
        return [CPU, *self.gpus]

    def precisions_for(self, gpu_type: str) -> frozenset[Precision]:
        """Precisions the given GPU type (or the CPU) can serve."""
        return self.cpu.precisions if gpu_type == CPU else self.gpus[gpu_type].precisions

    def gpu_price(self, gpu_type: str, spot: bool, overrides: Mapping[str, float]) -> float:
        """USD per GPU-hour, a per-service or per-cluster override winning over the list."""
        if gpu_type in overrides:
            return overrides[gpu_type]
        return self.gpus[gpu_type].price.pick(spot)

    def replica_cost(
        self,
        gpu_type: str,
        gpus_per_replica: int,
        cpu_cores: float,
        memory_bytes: float,
        spot: bool,
        overrides: Mapping[str, float],
    ) -> float:
        """USD per hour of one replica.

        A GPU replica costs its GPUs (the instance price per GPU already carries the host's CPU
        and memory); a CPU replica costs the vCPUs and memory it requests.
        """
        if gpu_type != CPU:
            return gpus_per_replica * self.gpu_price(gpu_type, spot, overrides)
        return self.cpu_cost(cpu_cores, memory_bytes, spot, overrides)

    def cpu_cost(
        self, cpu_cores: float, memory_bytes: float, spot: bool, overrides: Mapping[str, float]
    ) -> float:
        """USD per hour of vCPUs and memory: a `cpu` override prices the vCPU (memory then
        free), else the catalog's vCPU-hour and GiB-hour."""
        if CPU in overrides:
            return cpu_cores * overrides[CPU]
        return cpu_cores * self.cpu.vcpu_hour.pick(spot) + (
            memory_bytes / GIB
        ) * self.cpu.gib_hour.pick(spot)


def parse_catalog(document: Mapping[str, object]) -> GpuCatalog:
    """Build a catalog from the parsed YAML, giving each GPU its own name."""
    gpus = {
        name: GpuType.model_validate({"name": name, **entry})
        for name, entry in dict(document["gpus"]).items()  # type: ignore[call-overload]
    }
    return GpuCatalog.model_validate({**document, "gpus": gpus})


@cache
def load_catalog() -> GpuCatalog:
    """The catalog shipped with the package."""
    text = resources.files("tenfold.api").joinpath("gpu_catalog.yaml").read_text()
    return parse_catalog(yaml.safe_load(text))
