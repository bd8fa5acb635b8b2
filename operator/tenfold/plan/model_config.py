"""Triton's model-config protobuf (`model_config_pb2`), without tritonclient's gRPC client.

The module ships inside `tritonclient.grpc`, whose package imports grpc, numpy and the
whole client on the way: 26 MiB of the operator's resident memory, which renders
config.pbtxt and never calls Triton. This loads the generated module file on its own,
under its canonical name, so a process that later imports `tritonclient.grpc` (the runtime,
the tools) gets this same module back from `sys.modules` instead of registering the
protobuf descriptors a second time (which protobuf refuses).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

MODULE_NAME = "tritonclient.grpc.model_config_pb2"


def load_model_config() -> ModuleType:
    """The `model_config_pb2` module: the one already imported, or its file loaded alone."""
    loaded = sys.modules.get(MODULE_NAME)
    if loaded is not None:
        return loaded
    client = importlib.util.find_spec("tritonclient")
    if client is None or not client.submodule_search_locations:
        raise ImportError(f"{MODULE_NAME}: the tritonclient package is not installed")
    path = Path(next(iter(client.submodule_search_locations)), "grpc", "model_config_pb2.py")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{MODULE_NAME}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module


mc = load_model_config()
