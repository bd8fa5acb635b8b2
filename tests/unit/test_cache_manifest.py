"""Reading the model identity from the prepare manifest."""

import json

import pytest

from tenfold_runtime.cache.manifest import (
    ManifestError,
    ModelIdentity,
    identity_from_manifest,
    read_manifest,
)


def test_primary_key_names():
    doc = {
        "model_name": "embed",
        "digest": "sha256:aa",
        "version": 1,
        "precision_served": "int8",
        "runtime_version": "0.1.0",
    }
    assert identity_from_manifest(doc) == ModelIdentity("embed", "sha256:aa", "1", "int8", "0.1.0")


def test_alias_key_names():
    doc = {
        "name": "embed",
        "model_digest": "sha256:aa",
        "version": "1",
        "precision": "fp16",
        "runtime_version": "0.1.0",
    }
    assert identity_from_manifest(doc).precision == "fp16"


def test_prepare_manifest_key_names():
    doc = {
        "schema": "tenfold.dev/prepare-manifest/v1",
        "model_name": "embed",
        "model_version": "1",
        "source_digest": "sha256:aa",
        "spec_digest": "sha256:ss",
        "precision_served": "mixed",
        "runtime_version": "0.1.0",
    }
    assert identity_from_manifest(doc) == ModelIdentity(
        "embed", "sha256:aa", "1", "mixed", "0.1.0", "sha256:ss"
    )


def test_a_manifest_without_a_served_precision_is_refused():
    doc = {"name": "m", "digest": "d", "version": "1", "runtime_version": "0"}
    with pytest.raises(ManifestError, match="precision"):
        identity_from_manifest({**doc, "precision_served": None})


def test_missing_key_is_named():
    with pytest.raises(ManifestError, match="'precision_served' or 'precision'"):
        identity_from_manifest({"name": "m", "digest": "d", "version": "1", "runtime_version": "0"})


def test_unreadable_file(tmp_path):
    (tmp_path / "m.json").write_text("[1]")
    with pytest.raises(ManifestError):
        read_manifest(tmp_path / "m.json")
    with pytest.raises(ManifestError):
        read_manifest(tmp_path / "absent.json")


def test_read_file(tmp_path):
    doc = {"name": "m", "digest": "d", "version": "1", "precision": "fp32", "runtime_version": "0"}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    assert read_manifest(tmp_path / "m.json").model_name == "m"
