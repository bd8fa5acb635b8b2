"""The sidecar parses exactly the flags the operator renders."""

import pytest

from tenfold.api.enums import CacheMode
from tenfold.api.sidecar import SidecarSettings
from tenfold_runtime.cache.cli import main, parse_settings, split_hostport


@pytest.mark.parametrize(
    "settings",
    [
        SidecarSettings(
            manifest="/models/m/tenfold-manifest.json",
            service_namespace="team-a",
            service_name="minilm",
        ),
        SidecarSettings(
            listen="127.0.0.1:18080",
            upstream="http://127.0.0.1:18000",
            metrics_listen="[::]:19090",
            backend=CacheMode.REDIS,
            redis_url="redis://redis:6379/0",
            ttl_seconds=60,
            max_bytes=1 << 20,
            manifest="/m.json",
            redis_timeout_ms=20,
            service_namespace="team-b",
            service_name="embed.v2",
        ),
    ],
)
def test_round_trip_of_the_rendered_flags(settings):
    assert parse_settings(settings.to_args()) == settings


SERVICE_FLAGS = ["--service-namespace=team-a", "--service-name=minilm"]


def test_redis_backend_needs_a_url():
    with pytest.raises(SystemExit):
        parse_settings(["--backend=redis", "--manifest=/m.json", *SERVICE_FLAGS])


@pytest.mark.parametrize(
    "flags",
    [
        [],  # no service: the keys would not say whose they are
        ["--service-namespace=team-a"],
        ["--service-namespace=team-a", "--service-name=a:b"],  # would blur two families
        ["--service-namespace=team/a", "--service-name=minilm"],
        ["--service-namespace=team-a", "--service-name=mini*"],  # a glob in the clean-up
    ],
)
def test_the_service_is_required_and_a_kubernetes_name(flags):
    with pytest.raises(SystemExit):
        parse_settings(["--manifest=/m.json", *flags])


def test_split_hostport():
    assert split_hostport("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert split_hostport("[::1]:9090") == ("::1", 9090)
    assert split_hostport(":80") == ("0.0.0.0", 80)


def test_a_missing_manifest_exits_with_a_clear_error(tmp_path, capsys):
    assert main([f"--manifest={tmp_path / 'absent.json'}", *SERVICE_FLAGS]) == 2
    assert "cannot read manifest" in capsys.readouterr().err
