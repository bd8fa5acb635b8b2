"""The `tenfold` command: render, validate, crd, run."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from tenfold import constants
from tenfold.api.catalog import load_catalog
from tenfold.api.crd import render_crd
from tenfold.api.resource import (
    FieldError,
    InferenceService,
    InvalidSpecError,
    parse_inference_service,
    parse_tuning_spec,
)

EXIT_INVALID = 1
EXIT_USAGE = 2


def read_documents(path: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file ('-' reads standard input)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _services(documents: list[dict[str, Any]], namespace: str) -> Iterator[InferenceService]:
    for document in documents:
        if document.get("kind") == constants.KIND:
            yield parse_inference_service(document, default_namespace=namespace)


def command_crd(args: argparse.Namespace, out: TextIO) -> int:
    """Print the generated CRD (or, with --reference, the Markdown API reference)."""
    if args.reference:
        from tenfold.api.reference import render_reference

        out.write(render_reference())
    else:
        out.write(render_crd(args.kind))
    return 0


def _report(path: str, name: str, errors: list[FieldError], err: TextIO) -> None:
    for error in errors:
        err.write(f"{path}: {name}: {error}\n")


def _validate_document(document: dict[str, Any]) -> None:
    """Raise InvalidSpecError naming each bad field of one InferenceService or InferenceTuning."""
    if document.get("kind") == constants.KIND:
        parse_inference_service(document)
    elif not isinstance(document.get("spec"), dict):
        raise InvalidSpecError([FieldError("spec", "is required and must be an object")])
    else:
        parse_tuning_spec(document["spec"])


def command_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Validate every InferenceService and InferenceTuning in the file; non-zero exit names
    each bad field."""
    failed = 0
    kinds = (constants.KIND, constants.TUNING_KIND)
    documents = [d for d in read_documents(args.file) if d.get("kind") in kinds]
    for document in documents:
        name = (document.get("metadata") or {}).get("name", "<unnamed>")
        try:
            _validate_document(document)
            out.write(f"{args.file}: {name}: valid\n")
        except InvalidSpecError as invalid:
            failed += 1
            _report(args.file, name, invalid.errors, err)
    if not documents:
        err.write(f"{args.file}: no {' or '.join(kinds)} found\n")
        return EXIT_INVALID
    return EXIT_INVALID if failed else 0


def command_render(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the Kubernetes objects the operator would apply, for review and GitOps."""
    from tenfold.api.cost import service_cost
    from tenfold.autoscale.limits import replicas_to_run
    from tenfold.plan import build_plan, render_yaml

    catalog = load_catalog()
    objects: list[dict[str, Any]] = []
    try:
        for service in _services(read_documents(args.file), args.namespace):
            cost = service_cost(service.spec, catalog)
            to_run = replicas_to_run(service.spec, cost)
            objects += build_plan(
                service.name,
                service.namespace,
                service.spec,
                replicas=to_run.replicas,
                surge=to_run.surge,
                catalog=catalog,
            )
    except InvalidSpecError as invalid:
        _report(args.file, "invalid", invalid.errors, err)
        return EXIT_INVALID
    out.write(render_yaml(objects))
    return 0


def command_prepare_spec(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print the prepare spec (JSON) the init container of the file's one service reads."""
    from tenfold.plan import build_prepare_spec

    try:
        services = list(_services(read_documents(args.file), "default"))
    except InvalidSpecError as invalid:
        _report(args.file, "invalid", invalid.errors, err)
        return EXIT_INVALID
    if len(services) != 1:
        err.write(f"{args.file}: expected one {constants.KIND}, found {len(services)}\n")
        return EXIT_USAGE
    (service,) = services
    out.write(build_prepare_spec(service.name, service.spec).model_dump_json(indent=2) + "\n")
    return 0


def command_run(args: argparse.Namespace) -> int:
    """Run the operator until interrupted."""
    import kopf

    import tenfold.controller.handlers  # noqa: F401  (registers the handlers)
    from tenfold.controller.leadership import Leadership, own_identity
    from tenfold.controller.settings import peering, peering_priority, scope

    if args.peering and args.namespace:
        print("tenfold: --peering needs a cluster-wide operator (no --namespace)", file=sys.stderr)
        return EXIT_USAGE

    kopf.configure(verbose=args.verbose)
    settings = kopf.OperatorSettings()
    scope(settings, args.namespace or ())
    peering(settings)
    priority = peering_priority(args.priority, args.peering)
    identity = own_identity()
    if args.peering:
        print(f"tenfold: peering {args.peering!r} as {identity} with priority {priority}",
              file=sys.stderr)  # fmt: skip
    kopf.run(
        settings=settings,
        # Without --peering the operator runs alone: the status loop's leadership check reads
        # the named peering only (kopf would otherwise look for a "default" one).
        standalone=args.standalone or not args.peering,
        identity=identity,  # type: ignore[arg-type]  # kopf's NewType of str
        memo=kopf.Memo(leadership=Leadership(args.peering, identity, priority)),
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
        peering_name=args.peering,
        priority=priority,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `tenfold`."""
    parser = argparse.ArgumentParser(prog="tenfold", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    crd = sub.add_parser("crd", help="print the InferenceService CRD generated from the API models")
    crd.add_argument("--reference", action="store_true", help="print the Markdown reference")
    crd.add_argument(
        "--kind",
        choices=[constants.KIND, constants.TUNING_KIND],
        default=constants.KIND,
        help="which kind's CRD",
    )
    validate = sub.add_parser("validate", help="validate InferenceService manifests")
    validate.add_argument("-f", "--file", required=True, help="YAML file, or - for stdin")
    render = sub.add_parser("render", help="print the objects the operator would apply")
    render.add_argument("-f", "--file", required=True, help="YAML file, or - for stdin")
    render.add_argument("-n", "--namespace", default="default", help="namespace if unset")
    prep = sub.add_parser(
        "prepare-spec", help="print the prepare spec the init container would read (JSON)"
    )
    prep.add_argument("-f", "--file", required=True, help="YAML file with one InferenceService")
    sub.add_parser(
        "tune",
        help="search the cheapest configuration of a service on this machine "
        "(runs `tenfold-runtime tune` with the same arguments; see docs/tuning.md)",
        add_help=False,
    )
    run = sub.add_parser("run", help="run the operator")
    run.add_argument("-n", "--namespace", action="append", help="watch only these namespaces")
    run.add_argument("--standalone", action="store_true", help="no peering (single replica)")
    run.add_argument("--peering", default=None, help="kopf peering object name (HA)")
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority (default with --peering: drawn at random, so the highest "
        "live replica acts; replicas of equal priority would all pause)",
    )
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness URL")
    run.add_argument("-v", "--verbose", action="store_true")
    return parser


def command_tune(arguments: Sequence[str]) -> int:
    """`tenfold tune ...` is `tenfold-runtime tune ...`: the search needs the runtime (torch,
    tritonserver, perf_analyzer), which the operator's own install does not carry."""
    runtime = shutil.which("tenfold-runtime")
    if runtime is None:
        sys.stderr.write(
            "tenfold tune: tenfold-runtime is not installed here "
            "(pip install 'tenfold[runtime,serve]', or run it in the runtime image)\n"
        )
        return EXIT_USAGE
    os.execv(runtime, [runtime, "tune", *arguments])
    return EXIT_USAGE  # not reached: execv replaces this process


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tenfold` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["tune"]:
        return command_tune(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        if args.command == "crd":
            return command_crd(args, sys.stdout)
        if args.command == "validate":
            return command_validate(args, sys.stdout, sys.stderr)
        if args.command == "render":
            return command_render(args, sys.stdout, sys.stderr)
        if args.command == "prepare-spec":
            return command_prepare_spec(args, sys.stdout, sys.stderr)
        return command_run(args)
    except (OSError, yaml.YAMLError) as error:
        sys.stderr.write(f"tenfold: {error}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
