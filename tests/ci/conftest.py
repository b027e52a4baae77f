"""Fixtures of the CI tests: a bare repository for the project, the emulator, a runner."""

from __future__ import annotations

import textwrap

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from tests.ci.harness import Remote
from tests.ci.harness import Runner
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING

# What a project that adopts a recipe keeps in git besides its task file.
GITIGNORE = "state/*.lock\nstate/*.backup\nstate/*.sandbox.*\n"
SECRETS = {"DINGTALK_APP_KEY": APP_KEY, "DINGTALK_APP_SECRET": APP_SECRET}


def tasks(body: str) -> str:
    return textwrap.dedent(body).lstrip()


@pytest.fixture
def remote(tmp_path):
    """The project's repository: main holds the onboarding task file and no state yet."""
    repo = Remote(tmp_path)
    repo.commit(
        {"tasks.yaml": tasks(ONBOARDING), ".gitignore": GITIGNORE, "README.md": "todos\n"},
        "Add the onboarding to-dos",
    )
    return repo


@pytest.fixture
def emulator(request):
    """The emulator as tests/e2e starts it; an indirect parameter sets DingTalk's daily limit
    of to-dos per user."""
    config = EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0)
    config.daily_limit = getattr(request, "param", config.daily_limit)
    with Emulator(config) as emu:
        yield emu


@pytest.fixture
def runner(tmp_path, remote, emulator):
    """Jobs reach the emulator through DINGSYNC_ENDPOINT, as they would a gateway."""
    return Runner(tmp_path, remote, {"DINGSYNC_ENDPOINT": emulator.url})
