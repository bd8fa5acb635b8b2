"""Run tritonserver locally the way the pod does, from the nvidia-pytriton wheel.

The wheel ships `tritonserver` 2.51, the Python backend and the local response cache. Three
things differ from the NGC image and are fixed here: the backend folder needs the stub for
this interpreter's version, the stub must load this interpreter's libpython (so it is first on
LD_LIBRARY_PATH, before the wheel's bundled libraries), and the stub must see this
environment's site-packages (torch, transformers): the stub runs Python in isolated mode, so
the generated model.py reads them from TENFOLD_SITE_DIRS.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tenfold.api.triton_io import BACKENDS
from tenfold.constants import TRITON_BASE_ARGS
from tenfold_runtime.builders import SITE_DIRS_ENV

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
DEFAULT_CACHE_ROOT = Path(os.environ.get("TENFOLD_CACHE", Path.home() / ".cache" / "tenfold"))


class TritonError(RuntimeError):
    """tritonserver could not be found, started or made ready."""


@dataclass(frozen=True)
class Ports:
    """The three ports tritonserver listens on."""

    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class TritonInstall:
    """Paths inside the nvidia-pytriton wheel."""

    binary: Path
    python_backend: Path
    stubs: Path
    caches: Path
    libs: Path


def container_command(cache_bytes: int | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The main container's command as the operator renders it in the Deployment."""
    command = ["tritonserver", *TRITON_BASE_ARGS]
    if cache_bytes:
        command.append(f"--cache-config=local,size={cache_bytes}")
    return [*command, *extra_args]


def localize_command(
    command: Sequence[str],
    *,
    binary: Path,
    repository: Path,
    ports: Ports,
    backend_dir: Path,
    cache_dir: Path,
) -> list[str]:
    """Map a pod command onto this machine: local binary, repository, ports, plugin folders."""
    replacements = {
        "--model-repository": str(repository),
        "--http-port": str(ports.http),
        "--grpc-port": str(ports.grpc),
        "--metrics-port": str(ports.metrics),
    }
    if not command or Path(command[0]).name != "tritonserver":
        raise TritonError(f"expected a tritonserver command, got {list(command)[:1]}")
    local = [str(binary)]
    for arg in command[1:]:
        flag, sep, _ = arg.partition("=")
        local.append(f"{flag}={replacements[flag]}" if sep and flag in replacements else arg)
    flags = {arg.partition("=")[0] for arg in local}
    for flag, value in (("--backend-directory", backend_dir), ("--cache-directory", cache_dir)):
        if flag not in flags:
            local.append(f"{flag}={value}")
    return local


def triton_env(
    base: Mapping[str, str], *, python_lib: Path, wheel_libs: Path, site_packages: Path
) -> dict[str, str]:
    """The environment for tritonserver: this interpreter's libpython first, then the wheel's."""
    env = dict(base)
    library_path = [str(python_lib), str(wheel_libs)]
    if base.get("LD_LIBRARY_PATH"):
        library_path.append(base["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
    # The stub's interpreter runs isolated and ignores PYTHONPATH; the generated model.py
    # adds the folders named here as site directories instead.
    env[SITE_DIRS_ENV] = str(site_packages)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def find_install() -> TritonInstall:
    """Locate tritonserver and its plugins inside the installed nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError as error:
        message = "nvidia-pytriton is not installed: pip install 'tenfold[serve]'"
        raise TritonError(message) from error
    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    install = TritonInstall(
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stubs=root / "python_backend_stubs",
        caches=root / "caches",
        libs=root.parent.parent / "nvidia_pytriton.libs",
    )
    missing = [p for p in (install.binary, install.python_backend, install.libs) if not p.exists()]
    if missing:
        raise TritonError(f"nvidia-pytriton is incomplete, missing: {missing}")
    return install


def ensure_backend_dir(install: TritonInstall, cache_root: Path = DEFAULT_CACHE_ROOT) -> Path:
    """A backends folder whose python/ holds the stub for this interpreter (idempotent)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = install.stubs / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    backends = cache_root / "triton" / f"backends-py{version}"
    python_dir = backends / "python"
    if not (python_dir / stub.name).is_file():
        backends.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=backends.parent))
        shutil.copytree(
            install.python_backend, staging / "python", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy2(stub, staging / "python" / stub.name)
        shutil.rmtree(backends, ignore_errors=True)
        staging.rename(backends)  # a rename: a concurrent reader sees all or nothing
    return backends


# Schedulers built into tritonserver itself: no plugin folder to look for.
BUILTIN_PLATFORMS = frozenset({"ensemble"})
# The backend plugin behind each platform name, from the table the operator renders with.
PLATFORM_BACKENDS = {platform: backend for platform, backend in BACKENDS.values() if platform}


def required_backends(configs: Mapping[str, str]) -> dict[str, str]:
    """The backend plugin each model config (by model name) needs; ensembles need none."""
    needed = {}
    for name, text in configs.items():
        config = text_format.Parse(text, mc.ModelConfig())
        if config.platform in BUILTIN_PLATFORMS:
            continue
        needed[name] = config.backend or PLATFORM_BACKENDS.get(config.platform, config.platform)
    return needed


def repository_configs(repository: Path) -> dict[str, str]:
    """config.pbtxt text of every model folder (staging folders start with a dot)."""
    return {
        path.parent.name: path.read_text()
        for path in sorted(Path(repository).glob("*/config.pbtxt"))
        if not path.parent.name.startswith(".")
    }


def check_backends(configs: Mapping[str, str], backend_dir: Path) -> None:
    """Fail before starting when a model needs a backend this tritonserver does not have.

    The nvidia-pytriton wheel ships the Python backend only; the pytorch and onnxruntime
    backends come with the NGC Triton image the cluster runs.
    """
    missing = {
        model: backend
        for model, backend in required_backends(configs).items()
        if not (backend_dir / backend).is_dir()
    }
    if missing:
        listed = ", ".join(f"{model} needs {backend}" for model, backend in missing.items())
        raise TritonError(
            f"this tritonserver has no backend for: {listed}; the local install ships "
            f"{sorted(p.name for p in backend_dir.iterdir())} only (the NGC image has the rest)"
        )


def local_backend_dir() -> Path:
    """The backends folder of the local tritonserver (prepared on first use)."""
    return ensure_backend_dir(find_install())


def python_lib_dir() -> Path:
    """The folder holding this interpreter's shared libpython (pyenv: <prefix>/lib)."""
    libdir = Path(sysconfig.get_config_var("LIBDIR") or sys.base_prefix)
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    # The stub links the versioned soname, which is all Debian's libpython3.11 package ships
    # (the unversioned .so comes with -dev): the runtime image has only that one.
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    shared = [name for name in (library, soname) if ".so" in name and (libdir / name).exists()]
    if not library.endswith(".so") or not shared:
        raise TritonError(
            f"{sys.executable} has no shared libpython ({libdir / library}); the Python backend "
            "stub needs one (pyenv: build with PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )
    return libdir


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TritonHandle:
    """A running tritonserver; `stop()` (or leaving the `with` block) shuts it down."""

    process: subprocess.Popen[bytes]
    ports: Ports
    command: list[str]
    log_path: Path

    @property
    def http_url(self) -> str:
        """host:port for tritonclient.http."""
        return f"127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        """host:port for tritonclient.grpc."""
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint."""
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def log_tail(self, lines: int = 40) -> str:
        """The end of tritonserver's log, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL of its process group."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver did not stop in %.0fs; killing it", timeout)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> TritonHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: ask Linux for SIGTERM when the starting process dies.

    A killed test run or bench then cannot leave a tritonserver behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_ready(handle: TritonHandle, timeout: float) -> None:
    """Poll /v2/health/ready until 200, the process dies, or `timeout` passes."""
    url = f"http://{handle.http_url}/v2/health/ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise TritonError(
                f"tritonserver exited with {handle.process.returncode}:\n{handle.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or models still loading
        time.sleep(0.25)
    raise TritonError(f"tritonserver not ready after {timeout:.0f}s:\n{handle.log_tail()}")


def start_triton(
    repository: Path,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    extra_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 180.0,
    exit_timeout: int = 5,
) -> TritonHandle:
    """Start tritonserver on `repository` and return once it reports ready.

    `command` is the pod's container command (default: `container_command(extra_args=...)`);
    unset ports are picked free on loopback. `exit_timeout` bounds how long a stop waits
    for clients that keep idle connections open (Triton's own default is 30 s).
    """
    install = find_install()
    ports = Ports(http_port or free_port(), grpc_port or free_port(), metrics_port or free_port())
    backend_dir = ensure_backend_dir(install)
    check_backends(repository_configs(Path(repository)), backend_dir)
    argv = localize_command(
        command or container_command(extra_args=extra_args),
        binary=install.binary,
        repository=Path(repository).resolve(),
        ports=ports,
        backend_dir=backend_dir,
        cache_dir=install.caches,
    )
    if not any(arg.startswith("--exit-timeout-secs") for arg in argv):
        argv.append(f"--exit-timeout-secs={exit_timeout}")
    env = triton_env(
        os.environ,
        python_lib=python_lib_dir(),
        wheel_libs=install.libs,
        site_packages=Path(sysconfig.get_paths()["purelib"]),
    )
    log_path = log_path or Path(tempfile.mkstemp(prefix="tritonserver-", suffix=".log")[1])
    log.info("starting %s (log %s)", " ".join(argv), log_path)
    with log_path.open("wb") as log_file:
        # Own session: stop() can kill the server and its backend stubs as one group.
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    handle = TritonHandle(process=process, ports=ports, command=argv, log_path=log_path)
    try:
        wait_ready(handle, ready_timeout)
    except BaseException:
        handle.stop()
        raise
    return handle
