"""The sidecar parses exactly the flags the operator renders."""

import pytest

from tenfold.api.enums import CacheMode
from tenfold.api.sidecar import SidecarSettings
from tenfold_runtime.cache.cli import main, parse_settings, split_hostport


@pytest.mark.parametrize(
    "settings",
    [
        SidecarSettings(manifest="/models/m/tenfold-manifest.json"),
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
        ),
    ],
)
def test_round_trip_of_the_rendered_flags(settings):
    assert parse_settings(settings.to_args()) == settings


def test_redis_backend_needs_a_url():
    with pytest.raises(SystemExit):
        parse_settings(["--backend=redis", "--manifest=/m.json"])


def test_split_hostport():
    assert split_hostport("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert split_hostport("[::1]:9090") == ("::1", 9090)
    assert split_hostport(":80") == ("0.0.0.0", 80)


def test_a_missing_manifest_exits_with_a_clear_error(tmp_path, capsys):
    assert main([f"--manifest={tmp_path / 'absent.json'}"]) == 2
    assert "cannot read manifest" in capsys.readouterr().err
