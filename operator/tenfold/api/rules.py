"""Cross-field rules, written once and enforced twice.

Each rule carries a CEL expression for the CRD's `x-kubernetes-validations` (so the apiserver
rejects bad objects even while the operator is down) and a Python predicate for `tenfold
validate` and the operator. Unit tests check that both sides agree on the same examples; the
integration suite checks the apiserver really applies the CEL.

CEL sees the object after the apiserver applied the schema's defaults, so every section exists.
spec.py runs these rules in its validator, so this module names the spec type for annotations
only and never imports spec.py at run time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from tenfold.api.catalog import CPU, GIB, GpuCatalog, load_catalog
from tenfold.api.cost import HOURS_PER_MONTH, service_cost, valid_price
from tenfold.api.enums import GuardMetric, Precision
from tenfold.api.footprint import (
    MI,
    REDIS_CPU_MILLICORES,
    REDIS_OVERHEAD_BYTES,
    SIDECAR_CPU_MILLICORES,
    SIDECAR_OVERHEAD_BYTES,
)
from tenfold.api.serving import (
    BACKEND_FIELD,
    DIMENSIONS,
    ENGINE_FIELD,
    FALLBACK_FIELD,
    FORMAT_FIELD,
    METRIC_FIELD,
    PRECISION_FIELD,
    SERVING,
    Refusal,
    ServingTable,
)

if TYPE_CHECKING:
    from tenfold.api.spec import InferenceServiceSpec


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: a CEL expression and the Python predicate it mirrors."""

    name: str
    field_path: str  # relative to spec, CEL's fieldPath syntax
    message: str
    cel: str
    holds: Callable[[InferenceServiceSpec], bool]
    # Optional richer wording with the offending values: CEL messageExpression and Python.
    message_expression: str | None = None
    detail: Callable[[InferenceServiceSpec], str] | None = None

    def explain(self, spec: InferenceServiceSpec) -> str:
        """The message for this spec, with its values when the rule can name them."""
        return self.detail(spec) if self.detail else self.message


@dataclass(frozen=True)
class Violation:
    """A broken rule, named by the full field path users see in their YAML."""

    rule: str
    field_path: str
    message: str


def _cel_list(items: list[str]) -> str:
    return json.dumps(sorted(items))


def _cel_map(mapping: Mapping[str, object]) -> str:
    return json.dumps(mapping, sort_keys=True)


def min_replicas_cost(spec: InferenceServiceSpec, catalog: GpuCatalog) -> float:
    """USD per hour of running the spec's minReplicas (and the managed Redis, if any) at
    catalog prices: every pod tenfold creates (api.cost)."""
    cost = service_cost(spec, catalog)
    return spec.autoscaling.min_replicas * cost.per_replica + cost.fixed


def _budget_covers_min(spec: InferenceServiceSpec) -> bool:
    cap = spec.budget.hourly_cap()
    if cap is None or spec.hardware.gpu_type not in load_catalog().type_names():
        return True
    # A cent of slack keeps float rounding from rejecting an exact fit.
    return min_replicas_cost(spec, load_catalog()) <= cap + 1e-9


def _budget_detail(spec: InferenceServiceSpec) -> str:
    needed = min_replicas_cost(spec, load_catalog())
    return (
        f"minReplicas {spec.autoscaling.min_replicas} of {spec.hardware.gpu_type} cost "
        f"{needed:.4f} USD/hour, over the budget's {spec.budget.hourly_cap():.4f} USD/hour; "
        "raise the budget, lower minReplicas or pick a cheaper gpuType"
    )


def _budget_cel(catalog: GpuCatalog) -> str:
    on_demand = {name: gpu.price.on_demand for name, gpu in catalog.gpus.items()}
    spot = {name: gpu.price.spot for name, gpu in catalog.gpus.items()}
    hw, budget = "self.hardware", "self.budget"
    gpu_price = (
        f"({hw}.gpuType in {budget}.priceOverrides ? {budget}.priceOverrides[{hw}.gpuType]"
        f" : ({hw}.spot ? {_cel_map(spot)} : {_cel_map(on_demand)})[{hw}.gpuType])"
    )
    cpu_price = (
        f"({hw}.cpu.size() > 0 && 'cpu' in {budget}.priceOverrides"
        f" ? quantity({hw}.cpu).asApproximateFloat() * {budget}.priceOverrides['cpu']"
        f" : quantity({hw}.cpu).asApproximateFloat()"
        f" * ({hw}.spot ? {catalog.cpu.vcpu_hour.spot} : {catalog.cpu.vcpu_hour.on_demand})"
        f" + quantity({hw}.memory).asApproximateFloat() / {float(GIB)}"
        f" * ({hw}.spot ? {catalog.cpu.gib_hour.spot} : {catalog.cpu.gib_hour.on_demand}))"
    )
    replica = f"({hw}.gpuType == 'cpu' ? {cpu_price} : double({hw}.gpusPerReplica) * {gpu_price})"
    # api.footprint's containers, priced as api.cost prices them (catalog.cpu_cost).
    cache = "self.cache"

    def mib(bytes_expr: str) -> str:
        return f"double(({bytes_expr} + {MI - 1}) / {MI} * {MI})"

    def cpu_cost(millicores: int, memory: str, spot: str) -> str:
        cores = millicores / 1000
        return (
            f"('cpu' in {budget}.priceOverrides ? {cores} * {budget}.priceOverrides['cpu']"
            f" : {cores} * ({spot} ? {catalog.cpu.vcpu_hour.spot} : "
            f"{catalog.cpu.vcpu_hour.on_demand}) + {memory} / {float(GIB)}"
            f" * ({spot} ? {catalog.cpu.gib_hour.spot} : {catalog.cpu.gib_hour.on_demand}))"
        )

    held = f"({cache}.mode == 'memory' ? {cache}.maxBytes : 0)"
    sidecar_memory = mib(f"{held} + {SIDECAR_OVERHEAD_BYTES}")
    sidecar = (
        f"({cache}.mode == 'none' ? 0.0"
        f" : {cpu_cost(SIDECAR_CPU_MILLICORES, sidecar_memory, f'{hw}.spot')})"
    )
    redis_memory = mib(f"{cache}.maxBytes + {REDIS_OVERHEAD_BYTES}")
    redis = (
        f"({cache}.mode == 'redis' && !has({cache}.redis.url)"
        f" ? {cpu_cost(REDIS_CPU_MILLICORES, redis_memory, 'false')} : 0.0)"
    )
    needed = f"(double(self.autoscaling.minReplicas) * ({replica} + {sidecar}) + {redis})"
    hourly = f"(!has({budget}.maxCostPerHour) || {needed} <= {budget}.maxCostPerHour + 1e-9)"
    month = float(HOURS_PER_MONTH)
    monthly = f"(!has({budget}.monthlyCap) || {needed} * {month} <= {budget}.monthlyCap + 1e-6)"
    known = f"{hw}.gpuType in {_cel_list(catalog.type_names())}"
    return f"!({known}) || ({hourly} && {monthly})"


def spec_refusals(spec: InferenceServiceSpec, table: ServingTable = SERVING) -> list[Refusal]:
    """Every reason the runtime cannot serve the spec (the table's verdict on its choices)."""
    quantization = spec.quantization
    return table.refusals(
        spec.model.task,
        spec.model.format,
        spec.runtime.backend,
        quantization.guard.metric,
        gpu=spec.hardware.gpu_type != CPU,
        precision=quantization.precision,
        fallback=quantization.guard.fallback,
        engine=spec.runtime.engine,
    )


def _refusal_rule(
    table: ServingTable,
    name: str,
    field_path: str,
    message: str,
    cel: str,
    expression: str | None,
) -> Rule:
    """A rule that holds when the table refuses nothing under `name`."""

    def refused(spec: InferenceServiceSpec) -> list[Refusal]:
        return [r for r in spec_refusals(spec, table) if r.rule == name]

    return Rule(
        name=name,
        field_path=field_path,
        message=message,
        cel=cel,
        holds=lambda s: not refused(s),
        message_expression=expression,
        detail=lambda s: "; ".join(r.reason for r in refused(s)) or message,
    )


def serving_rules(table: ServingTable) -> tuple[Rule, ...]:
    """The serve-ability rules, generated from the table so that CEL and Python agree.

    The CEL messageExpressions look the message up in maps the table's own wording fills, so
    the apiserver's answer and `tenfold validate`'s are the same text.
    """
    model, backend = "self.model", "self.runtime.backend"
    values = {"task": f"{model}.task", "format": f"{model}.format", "backend": backend}
    rules = []
    for dimension in DIMENSIONS:
        served = table.served_values(dimension)
        field = values[dimension.name]
        rules.append(
            _refusal_rule(
                table,
                f"{dimension.name}-served",
                dimension.field_path,
                f"tenfold serves {dimension.name} {' or '.join(served)} only",
                f"{field} in {_cel_list(served)}",
                f"{_cel_map(table.refused_messages(dimension))}[{field}]",
            )
        )
    # Each value on its own is served, but maybe not together: a path per combination.
    all_served = " && ".join(
        f"{values[d.name]} in {_cel_list(table.served_values(d))}" for d in DIMENSIONS
    )
    key = f"{model}.task + '/' + {model}.format + '/' + {backend}"
    combination_messages = {
        f"{task}/{format}": table.combination_message(task, format)
        for task in table.served_values(DIMENSIONS[0])
        for format in table.served_values(DIMENSIONS[1])
    }
    rules.append(
        _refusal_rule(
            table,
            "combination-served",
            BACKEND_FIELD,
            "this backend does not serve this task and format; see the serving table",
            f"!({all_served}) || {key} in {_cel_list([p.key() for p in table.served])}",
            f"{_cel_map(combination_messages)}[{model}.task + '/' + {model}.format]",
        )
    )
    metric = "self.quantization.guard.metric"
    fitting = {str(task): [str(m) for m in ms] for task, ms in table.guard_metrics.items()}
    metric_messages = {
        f"{task}/{m}": table.metric_message(task, m)
        for task in table.guard_metrics
        for m in GuardMetric
        if not table.metric_fits(task, m)
    }
    rules.append(
        _refusal_rule(
            table,
            "metric-fits-task",
            METRIC_FIELD,
            "the guard metric does not fit the task: "
            + "; ".join(f"{t} takes {' or '.join(m)}" for t, m in fitting.items()),
            f"!has({metric}) || !({model}.task in {_cel_map(fitting)})"
            f" || {metric} in {_cel_map(fitting)}[{model}.task]",
            f"{_cel_map(metric_messages)}[{model}.task + '/' + {metric}]",
        )
    )
    rules += precision_rules(table)
    rules += engine_rules(table)
    gpu_only = sorted(str(b) for b in table.gpu_only)
    rules.append(
        _refusal_rule(
            table,
            "backend-needs-gpu",
            BACKEND_FIELD,
            table.gpu_message(),
            f"!({backend} in {_cel_list(gpu_only)} && self.hardware.gpuType == 'cpu')",
            None,
        )
    )
    cpu_only = {str(f): table.cpu_message(f) for f in table.cpu_only_formats}
    rules.append(
        _refusal_rule(
            table,
            "format-needs-cpu",
            FORMAT_FIELD,
            "; ".join(cpu_only.values()),
            f"!({model}.format in {_cel_list(list(cpu_only))} && self.hardware.gpuType != 'cpu')",
            f"{_cel_map(cpu_only)}[{model}.format]",
        )
    )
    return tuple(rules)


def engine_rules(table: ServingTable) -> list[Rule]:
    """An engine other than torch runs only on its paths, precisions and (maybe) CPU."""
    if not table.engines:
        return []
    model, runtime = "self.model", "self.runtime"
    engine, precision = f"{runtime}.engine", "self.quantization.precision"
    names = [str(e.engine) for e in table.engines]
    key = f"{model}.task + '/' + {model}.format + '/' + {runtime}.backend"
    paths = {str(e.engine): [p.key() for p in e.paths] for e in table.engines}
    path_messages = {str(e.engine): e.path_message() for e in table.engines}
    served = {str(e.engine): [str(p) for p in e.precisions] for e in table.engines}
    unserved = _cel_list([str(p) for p in table.precisions_not_served])
    precision_messages = {
        f"{e.engine}/{p}": e.precision_message(p)
        for e in table.engines
        for p in Precision
        if table.precision_served(p) and p not in e.precisions
    }
    cpu_only = {str(e.engine): e.gpu_message() for e in table.engines if e.gpu_reason}
    rules = [
        _refusal_rule(
            table,
            "engine-served",
            ENGINE_FIELD,
            "; ".join(path_messages.values()),
            f"!({engine} in {_cel_list(names)}) || {key} in {_cel_map(paths)}[{engine}]",
            f"{_cel_map(path_messages)}[{engine}]",
        ),
        _refusal_rule(
            table,
            "engine-precision",
            PRECISION_FIELD,
            "; ".join(
                f"engine {e.engine} serves precision {' or '.join(served[str(e.engine)])}"
                for e in table.engines
            ),
            f"!({engine} in {_cel_list(names)}) || {precision} in {unserved}"
            f" || {precision} in {_cel_map(served)}[{engine}]",
            f"{_cel_map(precision_messages)}[{engine} + '/' + {precision}]",
        ),
    ]
    if cpu_only:
        rules.append(
            _refusal_rule(
                table,
                "engine-needs-cpu",
                ENGINE_FIELD,
                "; ".join(cpu_only.values()),
                f"!({engine} in {_cel_list(list(cpu_only))} && self.hardware.gpuType != 'cpu')",
                f"{_cel_map(cpu_only)}[{engine}]",
            )
        )
    return rules


def precision_rules(table: ServingTable) -> list[Rule]:
    """The precision and every fallback rung must be precisions tenfold serves at all."""
    messages = table.precision_messages()
    refused = _cel_list(list(messages))
    precision, fallback = "self.quantization.precision", "self.quantization.guard.fallback"
    return [
        _refusal_rule(
            table,
            "precision-served",
            PRECISION_FIELD,
            f"precision {' and '.join(messages)} are not served; see the serving table",
            f"!({precision} in {refused})",
            f"{_cel_map(messages)}[{precision}]",
        ),
        _refusal_rule(
            table,
            "fallback-served",
            FALLBACK_FIELD,
            f"the fallback ladder may not name {' or '.join(messages)}; see the serving table",
            f"{fallback}.all(p, !(p in {refused}))",
            _cel_joined({f"'{p}' in {fallback}": m for p, m in messages.items()}),
        ),
    ]


def _cel_joined(parts: Mapping[str, str]) -> str:
    """CEL naming, joined by "; ", each message whose condition holds.

    Concatenated literals, not list functions: the apiserver must bound a messageExpression's
    cost from the expression alone, and it cannot bound a join's.
    """
    conditions = list(parts)
    terms = []
    for index, (condition, message) in enumerate(parts.items()):
        later = " || ".join(conditions[index + 1 :])
        separator = f" + (({later}) ? '; ' : '')" if later else ""
        terms.append(f"({condition} ? {json.dumps(message)}{separator} : '')")
    return " + ".join(terms)


def served_precisions(catalog: GpuCatalog, table: ServingTable) -> dict[str, list[str]]:
    """Per catalog type: the precisions its hardware runs (the catalog) that tenfold serves."""
    return {
        name: sorted(p.value for p in catalog.precisions_for(name) if table.precision_served(p))
        for name in catalog.type_names()
    }


def build_rules(catalog: GpuCatalog) -> tuple[Rule, ...]:
    """Every cross-field rule, with CEL generated from the catalog's data."""
    names = catalog.type_names()
    precisions = served_precisions(catalog, SERVING)
    # A precision served nowhere is precision-served's to refuse, with its own reason.
    unserved = [str(p) for p in SERVING.precisions_not_served]
    return (
        Rule(
            name="known-gpu-type",
            field_path=".hardware.gpuType",
            message=f"gpuType must be one of the catalog's types: {', '.join(names)}",
            cel=f"self.hardware.gpuType in {_cel_list(names)}",
            holds=lambda s: s.hardware.gpu_type in names,
        ),
        Rule(
            name="gpus-per-replica",
            field_path=".hardware.gpusPerReplica",
            message="gpusPerReplica must be at least 1 when gpuType is a GPU",
            cel="self.hardware.gpuType == 'cpu' || self.hardware.gpusPerReplica >= 1",
            holds=lambda s: s.hardware.gpu_type == CPU or s.hardware.gpus_per_replica >= 1,
        ),
        Rule(
            name="precision-supported",
            field_path=".quantization.precision",
            message=(
                "precision is not supported on this gpuType (bf16 needs Ampere or newer); "
                "see the GPU catalog"
            ),
            cel=(
                f"!(self.hardware.gpuType in {_cel_list(names)})"
                f" || self.quantization.precision in {_cel_list(unserved)}"
                " || self.quantization.precision"
                f" in {_cel_map(precisions)}[self.hardware.gpuType]"
            ),
            holds=lambda s: (
                s.hardware.gpu_type not in names
                or s.quantization.precision.value in unserved
                or s.quantization.precision.value in precisions[s.hardware.gpu_type]
            ),
            message_expression=(
                "'precision ' + self.quantization.precision"
                " + ' is not supported on gpuType ' + self.hardware.gpuType"
            ),
            detail=lambda s: (
                f"precision {s.quantization.precision.value} is not supported on gpuType "
                f"{s.hardware.gpu_type} (supported: {', '.join(precisions[s.hardware.gpu_type])})"
            ),
        ),
        *serving_rules(SERVING),
        Rule(
            name="replica-bounds",
            field_path=".autoscaling.minReplicas",
            message="minReplicas must not exceed maxReplicas",
            cel="self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",
            holds=lambda s: s.autoscaling.min_replicas <= s.autoscaling.max_replicas,
        ),
        Rule(
            name="prices-positive",
            field_path=".budget.priceOverrides",
            message="every priceOverrides value must be a finite USD per hour above 0",
            cel="self.budget.priceOverrides.all(k, self.budget.priceOverrides[k] > 0.0)",
            holds=lambda s: all(valid_price(v) for v in s.budget.price_overrides.values()),
            detail=lambda s: (
                "every priceOverrides value must be a finite USD per hour above 0; refused: "
                + ", ".join(
                    f"{k}={v:g}"
                    for k, v in sorted(s.budget.price_overrides.items())
                    if not valid_price(v)
                )
            ),
        ),
        Rule(
            name="budget-covers-min-replicas",
            field_path=".budget.maxCostPerHour",
            message=(
                "the budget cannot pay for minReplicas of this gpuType (with the cache sidecar "
                "and the managed Redis) at catalog prices; "
                "raise the budget, lower minReplicas or pick a cheaper gpuType"
            ),
            cel=_budget_cel(catalog),
            holds=_budget_covers_min,
            detail=_budget_detail,
        ),
        Rule(
            name="window-within-slo",
            field_path=".batching.maxQueueDelayMicroseconds",
            message="the batching window (maxQueueDelayMicroseconds) is longer than the p95 "
            "latency SLO (autoscaling.targetP95LatencyMs)",
            cel=(
                "double(self.batching.maxQueueDelayMicroseconds)"
                " <= self.autoscaling.targetP95LatencyMs * 1000.0"
            ),
            holds=lambda s: (
                s.batching.max_queue_delay_microseconds
                <= s.autoscaling.target_p95_latency_ms * 1000
            ),
        ),
        Rule(
            name="preferred-within-max",
            field_path=".batching.preferredBatchSizes",
            message="every preferred batch size must be at most maxBatchSize",
            cel="self.batching.preferredBatchSizes.all(s, s <= self.batching.maxBatchSize)",
            holds=lambda s: all(
                size <= s.batching.max_batch_size for size in s.batching.preferred_batch_sizes
            ),
        ),
        Rule(
            name="default-priority-level",
            field_path=".batching.defaultPriorityLevel",
            message="defaultPriorityLevel must be 0 without priority levels, "
            "else between 1 and priorityLevels",
            cel=(
                "self.batching.priorityLevels == 0 ? self.batching.defaultPriorityLevel == 0"
                " : (self.batching.defaultPriorityLevel >= 1"
                " && self.batching.defaultPriorityLevel <= self.batching.priorityLevels)"
            ),
            holds=lambda s: (
                s.batching.default_priority_level == 0
                if s.batching.priority_levels == 0
                else 1 <= s.batching.default_priority_level <= s.batching.priority_levels
            ),
        ),
    )


@cache
def shipped_rules() -> tuple[Rule, ...]:
    """build_rules for the shipped catalog, built once: every status tick validates a spec,
    and building the rules (their CEL text too) was most of what a validation cost."""
    return build_rules(load_catalog())


def violations(spec: InferenceServiceSpec) -> list[Violation]:
    """Every rule the spec breaks, in rule order, with `spec.`-rooted field paths."""
    return [
        Violation(rule.name, "spec" + rule.field_path, rule.explain(spec))
        for rule in shipped_rules()
        if not rule.holds(spec)
    ]


def cel_validations() -> list[dict[str, str]]:
    """The rules in the CRD's `x-kubernetes-validations` shape, placed on the spec."""
    validations = []
    for rule in shipped_rules():
        entry = {
            "rule": rule.cel,
            "message": rule.message,
            "fieldPath": rule.field_path,
            "reason": "FieldValueInvalid",
        }
        if rule.message_expression:
            entry["messageExpression"] = rule.message_expression
        validations.append(entry)
    return validations
