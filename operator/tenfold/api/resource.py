"""Whole InferenceService objects: parse a manifest into typed parts, or say what is wrong.

Errors name the field the way users wrote it (`spec.batching.maxBatchSize`) and the reason,
so `tenfold validate`, the operator's Degraded condition and the apiserver tell the same story.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tenfold import constants
from tenfold.api.spec import InferenceServiceSpec
from tenfold.api.tuning import InferenceTuningSpec

API_VERSION = f"{constants.API_GROUP}/{constants.API_VERSION}"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Room for the "-config"/"-redis" suffixes of child objects within a 63-character label.
MAX_NAME_LENGTH = 52


@dataclass(frozen=True)
class FieldError:
    """One reason a manifest is invalid."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InvalidSpecError(ValueError):
    """Raised with every FieldError found, so users fix them all in one pass."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class InferenceService:
    """A validated InferenceService: identity plus a typed spec."""

    name: str
    namespace: str
    spec: InferenceServiceSpec
    generation: int = 0
    uid: str | None = None


def _path(location: tuple[int | str, ...]) -> str:
    text = "spec"
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def spec_errors(error: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into field-path errors.

    Cross-field rule errors arrive at the spec's root with the paths already in the message.
    """
    found: list[FieldError] = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"] and message.startswith("spec."):
            for part in message.splitlines():
                path, _, reason = part.partition(": ")
                found.append(FieldError(path, reason))
        else:
            found.append(FieldError(_path(item["loc"]), message))
    return found


def parse_spec(spec: Mapping[str, Any]) -> InferenceServiceSpec:
    """Validate a spec mapping, raising InvalidSpecError with field paths."""
    try:
        text = json.dumps(dict(spec))
    except (TypeError, ValueError) as error:
        raise InvalidSpecError([FieldError("spec", f"is not JSON data: {error}")]) from None
    try:
        # Strict JSON validation types the fields as the apiserver's schema does: "12" is
        # not an integer and "yes" not a boolean there, so here neither (a lax parse had
        # accepted what the apiserver refuses). Enums still read from their strings.
        return InferenceServiceSpec.model_validate_json(text, strict=True)
    except ValidationError as error:
        raise InvalidSpecError(spec_errors(error)) from None


def parse_tuning_spec(spec: Mapping[str, Any]) -> InferenceTuningSpec:
    """Validate an InferenceTuning's spec mapping as parse_spec does a service's."""
    try:
        return InferenceTuningSpec.model_validate_json(json.dumps(dict(spec)), strict=True)
    except (TypeError, ValueError) as error:
        if isinstance(error, ValidationError):
            raise InvalidSpecError(spec_errors(error)) from None
        raise InvalidSpecError([FieldError("spec", f"is not JSON data: {error}")]) from None


def _identity_errors(document: Mapping[str, Any]) -> list[FieldError]:
    errors = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(FieldError("apiVersion", f"must be {API_VERSION}"))
    if document.get("kind") != constants.KIND:
        errors.append(FieldError("kind", f"must be {constants.KIND}"))
    name = (document.get("metadata") or {}).get("name", "")
    if not _NAME.match(name or "") or len(name) > MAX_NAME_LENGTH:
        errors.append(
            FieldError(
                "metadata.name",
                f"must be a lowercase RFC 1123 label of at most {MAX_NAME_LENGTH} characters",
            )
        )
    if not isinstance(document.get("spec"), Mapping):
        errors.append(FieldError("spec", "is required and must be an object"))
    return errors


def parse_inference_service(
    document: Mapping[str, Any], default_namespace: str = "default"
) -> InferenceService:
    """Validate a whole manifest; every problem is reported at once."""
    errors = _identity_errors(document)
    spec = None
    if isinstance(document.get("spec"), Mapping):
        try:
            spec = parse_spec(document["spec"])
        except InvalidSpecError as invalid:
            errors.extend(invalid.errors)
    if errors or spec is None:
        raise InvalidSpecError(errors)
    metadata = document["metadata"]
    return InferenceService(
        name=metadata["name"],
        namespace=metadata.get("namespace") or default_namespace,
        spec=spec,
        generation=int(metadata.get("generation") or 0),
        uid=metadata.get("uid"),
    )
