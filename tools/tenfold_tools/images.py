"""The pure parts of hack/images/build.sh: content keys and hand-assembled OCI archives.

A content key names an image by what goes into it (the Dockerfile, the files its COPY
lines copy, the key of its base, its build arguments), so an unchanged repository finds
its archive in the cache and a changed one builds a new one. Binary-only images (the pod
sandbox, CoreDNS) need no build at all: one uncompressed layer, a config and a manifest,
written here as an OCI image layout in a tar file that `ctr images import` reads.

Standard library only: build.sh runs it with whatever python3 the machine has.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import re
import shlex
import tarfile
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
# containerd names an imported image after this annotation of the index entry.
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


def dockerfile_instructions(text: str) -> Iterator[str]:
    """Logical instructions of a Dockerfile: continuations joined, comments dropped."""
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        yield logical
        logical = ""
    if logical.strip():
        yield logical


_FLAGS = re.compile(r"(?:\s*--\S+)*\s*")


def copy_sources(text: str) -> list[str]:
    """The build-context paths that COPY and ADD read (COPY --from reads a stage, not them)."""
    sources: list[str] = []
    for instruction in dockerfile_instructions(text):
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        end = _FLAGS.match(rest).end()  # type: ignore[union-attr]  # matches "" at least
        if "--from" in rest[:end]:
            continue
        body = rest[end:]
        args = json.loads(body) if body.startswith("[") else shlex.split(body)
        sources.extend(args[:-1])
    return sources


def read_ignore(path: Path) -> list[str]:
    """Patterns of a .dockerignore file; only the `**/<glob>` form is understood here."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("**/") or "/" in line[3:]:
            raise ValueError(f"{path}: only '**/<glob>' patterns are supported, got {line!r}")
        patterns.append(line[3:])
    return patterns


def ignored(relative: Path, patterns: Sequence[str]) -> bool:
    """Whether any component of a context-relative path matches an ignore glob."""
    return any(fnmatch.fnmatchcase(part, p) for part in relative.parts for p in patterns)


def context_files(context: Path, sources: Iterable[str], patterns: Sequence[str]) -> list[Path]:
    """Every file that the COPY sources take from the context, sorted, ignores applied."""
    found: set[Path] = set()
    for source in sources:
        root = context / source
        if not root.exists():
            raise FileNotFoundError(f"COPY source {source!r} is not in {context}")
        candidates = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in candidates:
            relative = path.relative_to(context)
            if not ignored(relative, patterns):
                found.add(relative)
    return sorted(found)


def content_key(
    dockerfile: Path,
    context: Path,
    *,
    parent: str = "",
    build_args: Mapping[str, str] | None = None,
    ignore: Sequence[str] = (),
) -> str:
    """A key that changes when anything the Dockerfile build reads changes, and only then."""
    digest = hashlib.sha256()
    text = dockerfile.read_text()

    def feed(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)

    feed("dockerfile", text, "parent", parent)
    for name, value in sorted((build_args or {}).items()):
        feed("arg", name, value)
    for relative in context_files(context, copy_sources(text), ignore):
        path = context / relative
        executable = "x" if os.access(path, os.X_OK) else "-"
        feed("file", relative.as_posix(), executable, path.read_bytes())
    return digest.hexdigest()[:16]


def files_key(paths: Iterable[Path], *extra: str) -> str:
    """A key over a few files' names and contents plus some strings (versions, flags)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.name}\0{len(path.read_bytes())}\0".encode())
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(f"\0{item}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LayerFile:
    """One file of a hand-assembled layer: where it comes from, where it lands, its mode."""

    source: Path
    target: str
    mode: int = 0o755
    capabilities: bytes = b""  # a security.capability xattr (file capabilities)


# vfs_cap_data revision 2 with the effective bit, permitting CAP_NET_BIND_SERVICE (10): what
# `setcap cap_net_bind_service=+ep` writes, so a non-root server may bind port 53.
NET_BIND_SERVICE = (0x02000001).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)


def layer_tar(files: Sequence[LayerFile]) -> bytes:
    """An uncompressed layer: root-owned files with a zero mtime, so equal input, equal digest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for item in sorted(files, key=lambda f: f.target):
            parts = item.target.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    made.add(folder)
            data = item.source.read_bytes()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), item.mode
            if item.capabilities:
                # containerd applies SCHILY.xattr.* PAX records as extended attributes.
                value = item.capabilities.decode("utf-8", "surrogateescape")
                info.pax_headers = {"SCHILY.xattr.security.capability": value}
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _blob(data: bytes, media_type: str) -> tuple[dict[str, object], bytes]:
    descriptor: dict[str, object] = {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    return descriptor, data


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def oci_layout(
    ref: str,
    files: Sequence[LayerFile],
    *,
    entrypoint: Sequence[str],
    user: str,
    cmd: Sequence[str] = (),
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
) -> dict[str, bytes]:
    """The files of an OCI image layout (path → bytes) holding one single-layer image."""
    layer_desc, layer = _blob(layer_tar(files), LAYER_MEDIA_TYPE)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(entrypoint),
            "Cmd": list(cmd) or None,
            "User": user,
            "Env": list(env),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created_by": "tenfold_tools.images", "comment": ref}],
    }
    config_desc, config_bytes = _blob(_json(config), CONFIG_MEDIA_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc, manifest_bytes = _blob(_json(manifest), MANIFEST_MEDIA_TYPE)
    tag = ref.rpartition(":")[2]
    manifest_desc["annotations"] = {CONTAINERD_NAME: ref, OCI_REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [manifest_desc]}
    layout = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    for desc, data in (
        (layer_desc, layer),
        (config_desc, config_bytes),
        (manifest_desc, manifest_bytes),
    ):
        layout["blobs/sha256/" + str(desc["digest"]).removeprefix("sha256:")] = data
    return layout


def write_oci_archive(dest: Path, layout: Mapping[str, bytes]) -> None:
    """Tar an OCI layout to dest, through a temporary name so a reader never sees half of it."""
    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in (
            "oci-layout",
            "index.json",
            *sorted(n for n in layout if n.startswith("blobs/")),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(layout[name]), 0o644
            tar.addfile(info, io.BytesIO(layout[name]))
    partial.replace(dest)


def project_version(pyproject: Path) -> str:
    """The version in pyproject.toml, which tags the images."""
    with pyproject.open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _parse_file(spec: str, capabilities: bytes) -> LayerFile:
    source, _, target = spec.partition(":")
    return LayerFile(Path(source), target or "/" + Path(source).name, capabilities=capabilities)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI for build.sh: `key`, `files-key`, `oci-archive`, `version`."""
    parser = argparse.ArgumentParser(prog="python -m tenfold_tools.images")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("key", help="content key of a Dockerfile build")
    key.add_argument("--dockerfile", type=Path, required=True)
    key.add_argument("--context", type=Path, default=Path("."))
    key.add_argument("--ignorefile", type=Path)
    key.add_argument("--parent", default="")
    key.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    files = commands.add_parser("files-key", help="key over files and strings")
    files.add_argument("paths", nargs="+", type=Path)
    files.add_argument("--extra", action="append", default=[])
    archive = commands.add_parser("oci-archive", help="write a single-layer OCI archive")
    archive.add_argument("--ref", required=True)
    archive.add_argument("--out", type=Path, required=True)
    archive.add_argument("--file", action="append", required=True, metavar="SOURCE[:TARGET]")
    archive.add_argument("--entrypoint", action="append", required=True)
    archive.add_argument("--user", required=True)
    archive.add_argument(
        "--net-bind-service", action="store_true", help="give the files cap_net_bind_service=+ep"
    )
    version = commands.add_parser("version", help="the project version")
    version.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)

    if args.command == "key":
        ignore = read_ignore(args.ignorefile) if args.ignorefile else []
        build_args = dict(a.split("=", 1) for a in args.build_arg)
        print(
            content_key(
                args.dockerfile,
                args.context,
                parent=args.parent,
                build_args=build_args,
                ignore=ignore,
            )
        )
    elif args.command == "files-key":
        print(files_key(args.paths, *args.extra))
    elif args.command == "oci-archive":
        caps = NET_BIND_SERVICE if args.net_bind_service else b""
        layout = oci_layout(
            args.ref,
            [_parse_file(f, caps) for f in args.file],
            entrypoint=args.entrypoint,
            user=args.user,
        )
        write_oci_archive(args.out, layout)
    else:
        print(project_version(args.pyproject))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
