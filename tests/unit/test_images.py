"""Content keys and hand-assembled OCI archives of tools/tenfold_tools/images.py."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from tenfold_tools import images

DOCKERFILE = """\
ARG BASE=python:3.11-slim
FROM ${BASE} AS requirements
COPY pyproject.toml /src/pyproject.toml
FROM ${BASE}
# a comment
COPY --from=requirements /requirements.txt /opt/requirements.txt
COPY --chown=1000:1000 pkg/ \\
     /opt/pkg/
ADD ["notes.txt", "/opt/"]
RUN echo done
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '1.2.3'\n")
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("x = 1\n")
    (tmp_path / "unrelated.txt").write_text("not copied")
    return tmp_path


def key(context: Path, **kwargs: object) -> str:
    return images.content_key(context / "Dockerfile", context, ignore=["__pycache__"], **kwargs)  # type: ignore[arg-type]


def test_copy_sources_skips_stages_and_joins_continuations() -> None:
    assert images.copy_sources(DOCKERFILE) == ["pyproject.toml", "pkg/", "notes.txt"]


def test_key_changes_with_a_copied_file_only(context: Path) -> None:
    before = key(context)
    (context / "unrelated.txt").write_text("changed")
    (context / "pkg" / "sub" / "__pycache__").mkdir()
    (context / "pkg" / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert key(context) == before
    (context / "pkg" / "sub" / "mod.py").write_text("x = 2\n")
    assert key(context) != before


def test_key_changes_with_parent_args_mode_and_dockerfile(context: Path) -> None:
    before = key(context)
    assert key(context, parent="other") != before
    assert key(context, build_args={"BASE": "local/base:1"}) != before
    (context / "notes.txt").chmod(0o755)
    assert key(context) != before
    (context / "notes.txt").chmod(0o644)
    assert key(context) == before
    (context / "Dockerfile").write_text(DOCKERFILE + "USER 1000\n")
    assert key(context) != before


def test_missing_copy_source_is_an_error(context: Path) -> None:
    (context / "notes.txt").unlink()
    with pytest.raises(FileNotFoundError):
        key(context)


def test_ignore_file_accepts_only_component_globs(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# comment\n**/__pycache__\n\n**/*.pyc\n")
    assert images.read_ignore(good) == ["__pycache__", "*.pyc"]
    bad = tmp_path / "bad"
    bad.write_text("build/\n")
    with pytest.raises(ValueError):
        images.read_ignore(bad)


def test_oci_archive_is_a_valid_layout(tmp_path: Path) -> None:
    binary = tmp_path / "coredns"
    binary.write_bytes(b"\x7fELF fake")
    archive = tmp_path / "coredns.oci.tar"
    layout = images.oci_layout(
        "docker.io/tenfold/coredns:v1.12.1",
        [images.LayerFile(binary, "/coredns", capabilities=images.NET_BIND_SERVICE)],
        entrypoint=["/coredns"],
        user="65532:65532",
    )
    images.write_oci_archive(archive, layout)
    assert not archive.with_name(archive.name + ".partial").exists()

    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]

    def blob(descriptor: dict) -> bytes:
        data = files["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
        assert len(data) == descriptor["size"]
        return data

    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["mediaType"] == images.MANIFEST_MEDIA_TYPE
    assert entry["annotations"][images.CONTAINERD_NAME] == "docker.io/tenfold/coredns:v1.12.1"
    manifest = json.loads(blob(entry))
    config = json.loads(blob(manifest["config"]))
    (layer_desc,) = manifest["layers"]
    assert layer_desc["mediaType"] == images.LAYER_MEDIA_TYPE  # uncompressed
    assert config["rootfs"]["diff_ids"] == [layer_desc["digest"]]
    assert config["config"]["Entrypoint"] == ["/coredns"]
    assert config["config"]["User"] == "65532:65532"

    layer = tmp_path / "layer.tar"
    layer.write_bytes(blob(layer_desc))
    with tarfile.open(layer) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.uid, member.mtime) == ("coredns", 0o755, 0, 0)
        xattr = member.pax_headers["SCHILY.xattr.security.capability"]
        assert xattr.encode("utf-8", "surrogateescape") == images.NET_BIND_SERVICE


def test_layer_is_reproducible(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"pause")
    files = [images.LayerFile(binary, "/usr/bin/pause")]
    assert images.layer_tar(files) == images.layer_tar(files)
    with tarfile.open(fileobj=__import__("io").BytesIO(images.layer_tar(files))) as tar:
        assert [m.name for m in tar.getmembers()] == ["usr", "usr/bin", "usr/bin/pause"]


def test_project_version(context: Path) -> None:
    assert images.project_version(context / "pyproject.toml") == "1.2.3"
