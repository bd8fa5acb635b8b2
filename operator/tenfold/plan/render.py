"""Multi-document YAML of a plan, stable byte for byte."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _PlanDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (config.pbtxt) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        # kubectl and Helm users read these; shared dicts must not become &id001 anchors.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PlanDumper.add_representer(str, _represent_str)


def render_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """The objects as `---`-separated YAML documents, keys sorted, lines never folded."""
    return yaml.dump_all(
        list(objects),
        Dumper=_PlanDumper,
        sort_keys=True,
        explicit_start=True,
        default_flow_style=False,
        width=1 << 16,
        allow_unicode=True,
    )
