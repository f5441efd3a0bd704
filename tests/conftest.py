"""Shared test fixtures: the captured Alertmanager payloads, settings, a fake clock, the app."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.clock import FakeClock
from remediator.settings import Settings
from remediator.store import Store

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REMEDIATOR_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "alertmanager"
EXAMPLE_RULES = REPO / "rules"
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fixture_names() -> list[str]:
    names = sorted(p.stem for p in (FIXTURES / "raw").glob("*.json"))
    assert len(names) == 14, f"expected the 14 captured payloads in {FIXTURES}, found {len(names)}"
    return names


def body(name: str) -> bytes:
    """The exact bytes Alertmanager sent."""
    return (FIXTURES / "raw" / f"{name}.json").read_bytes()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "rules_dir": EXAMPLE_RULES,
            "state_file": tmp_path / "state.db",
            "bearer_token": TOKEN,
            "allow_namespaces": ("shop", "payments", "data"),
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    return directory


class Hold:
    """Blocks the store's commit thread until released, so writes queue up as under load."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.started = threading.Event()
        self.release = threading.Event()

    def _block(self) -> None:
        self.started.set()
        self.release.wait(5)

    async def __aenter__(self) -> Hold:
        committer = self.store._committer  # reaching in: only tests need to stall a commit
        assert committer is not None
        self._blocker = asyncio.wrap_future(committer.submit(self._block))
        await asyncio.to_thread(self.started.wait, 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self._blocker

    async def queued(self, depth: int) -> None:
        """Wait until ``depth`` writes wait behind the stalled commit."""
        for _ in range(1000):
            if self.store.depth >= depth:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"store depth stayed at {self.store.depth}, expected {depth}")
