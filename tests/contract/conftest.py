"""Fixtures for running the real client over HTTP against the real emulator on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import Generic
from typing import TypeVar

import pytest

from dingsync.client import DingTalkClient
from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from dingsync.todo_client import TodoClient

# Long enough to be found by a scan; the client must never print either.
APP_KEY = "dingsync-contract-appkey-7f3a9c"
APP_SECRET = "S3cr3t-contract-appsecret-5d8e1b0a"


def config(**overrides: Any) -> EmulatorConfig:
    """An emulator for one app, no rate limit and room for many adds a day."""
    settings: dict[str, Any] = {
        "apps": {APP_KEY: APP_SECRET},
        "qps": 0,
        "daily_limit": 1000,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


@pytest.fixture(scope="session")
def _shared_emulator() -> Iterator[Emulator]:
    with Emulator(config()) as emu:
        yield emu


@pytest.fixture
def emu(_shared_emulator: Emulator) -> Emulator:
    """The shared emulator, fresh: no records, tokens, counters, faults or user list."""
    _shared_emulator.reset()
    return _shared_emulator


class Transcript:
    """Everything a test's clients said: log lines and the texts of errors they raised."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.texts: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)

    def all_text(self) -> str:
        return "\n".join(self.lines + self.texts)


@pytest.fixture
def transcript() -> Transcript:
    return Transcript()


StartEmulator = Callable[..., Emulator]


@pytest.fixture
def emulators(emu: Emulator) -> Iterator[list[Emulator]]:
    """Every emulator a test used (the shared one first), for the secret scan."""
    started: list[Emulator] = [emu]
    yield started
    for extra in started[1:]:
        extra.stop()


@pytest.fixture
def start_emulator(emulators: list[Emulator]) -> StartEmulator:
    """Start a private emulator with some settings changed; stopped after the test."""

    def start(**overrides: Any) -> Emulator:
        extra = Emulator(config(**overrides))
        extra.start()
        emulators.append(extra)
        return extra

    return start


ClientT = TypeVar("ClientT", DingTalkClient, TodoClient)


class ClientFactory(Generic[ClientT]):
    """Builds clients with fast backoff and a log, and finds secrets they leaked.

    ``emulators`` is the test's own list (shared emulator first, then every one started
    with ``start_emulator``), so that a token of a private emulator is scanned for too;
    ``extra_secrets`` takes tokens that did not come from an emulator (a test's own small
    server).
    """

    def __init__(
        self,
        kind: type[ClientT],
        emu: Emulator,
        emulators: list[Emulator],
        transcript: Transcript,
    ) -> None:
        self.kind = kind
        self.emu = emu
        self.emulators = emulators
        self.transcript = transcript
        self.clients: list[ClientT] = []
        self.extra_secrets: list[str] = []

    def __call__(self, endpoint: str | None = None, **overrides: Any) -> ClientT:
        options: dict[str, Any] = {
            "max_qps": 0,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "timeout": (2.0, 10.0),
            "log": self.transcript.log,
            "rng": random.Random(7),
        }
        options.update(overrides)
        key = options.pop("app_key", APP_KEY)
        secret = options.pop("app_secret", APP_SECRET)
        client = self.kind(endpoint or self.emu.url, key, secret, **options)
        self.clients.append(client)
        return client

    def leaks(self) -> list[str]:
        """The app key, the secret and every issued token found in what the clients said."""
        text = self.transcript.all_text()
        secrets = [APP_KEY, APP_SECRET, *self.extra_secrets]
        for emulator in self.emulators:
            secrets.extend(emulator.issued_tokens())
        return [secret for secret in secrets if secret in text]

    def close(self) -> None:
        for client in self.clients:
            self.transcript.texts.append(repr(client))
            client.close()
        self.clients.clear()


MakeClient = ClientFactory[DingTalkClient]
TodoClientFactory = ClientFactory[TodoClient]


@pytest.fixture
def make_client(
    emu: Emulator, emulators: list[Emulator], transcript: Transcript
) -> Iterator[MakeClient]:
    """Build clients; afterwards check that no secret leaked.

    The check runs after every test that used a client: neither the app key nor the
    secret nor any token an emulator of the test issued may appear in a log line, in the
    text of an error the test recorded, or in the client's repr.
    """
    factory = ClientFactory(DingTalkClient, emu, emulators, transcript)
    yield factory
    factory.close()
    assert not factory.leaks(), "a secret or token leaked into a log line or error"


@pytest.fixture
def make_todo_client(
    emu: Emulator, emulators: list[Emulator], transcript: Transcript
) -> Iterator[TodoClientFactory]:
    """Build v1.0 to-do clients; afterwards check, as ``make_client`` does, that no secret
    or token leaked into a log line, a recorded error text or a client's repr."""
    factory = ClientFactory(TodoClient, emu, emulators, transcript)
    yield factory
    factory.close()
    assert not factory.leaks(), "a secret or token leaked into a log line or error"
