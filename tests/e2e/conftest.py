"""End-to-end fixtures: the real CLI against the real emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dingsync.cli import main
from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig

APP_KEY = "ding-e2e-key"
APP_SECRET = "e2e-app-secret-7f3a9c"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def dingsync(*args: str, input: str | None = None) -> Run:
    """Run the CLI in-process, as a user would from a shell, and capture what it prints."""
    runner = CliRunner()
    with runner.isolation(input=input) as streams:
        code = main(list(args))
    stdout, stderr = streams[0], streams[1]
    return Run(code, stdout.getvalue().decode(), stderr.getvalue().decode())


@pytest.fixture
def emulator():
    with Emulator(EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0)) as emu:
        yield emu


@pytest.fixture
def workdir(tmp_path, monkeypatch, emulator):
    """A project folder with credentials and the endpoint pointing at the emulator."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DINGTALK_APP_KEY", APP_KEY)
    monkeypatch.setenv("DINGTALK_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("DINGSYNC_ENDPOINT", emulator.url)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def write_tasks(path: Path, body: str, api: str = "workrecord") -> Path:
    """Write a task file; ``api="todo"`` turns a workrecord file into its v1.0 twin."""
    path.write_text(for_api(textwrap.dedent(body).lstrip(), api), encoding="utf-8")
    return path


APIS = ("workrecord", "todo")
CREATOR = "hrbot01"  # the creator_userid of v1.0 twins
_WORKRECORD_ONLY = ("form", "source_name", "originator_userid", "pc_open_type", "create_time")


def for_api(text: str, api: str) -> str:
    """The task file ``text`` (written for workrecord) for ``api``.

    The v1.0 twin has the same keys, users, titles and urls; its forms become the
    description (so a form change stays a change of content, updated in place), a
    creator_userid is added and the other workrecord-only fields are dropped.
    """
    if api == "workrecord":
        return text
    data = yaml.safe_load(text)
    data = {"version": data.pop("version"), "api": "todo", **data}
    defaults = data.setdefault("defaults", {}) or {}
    data["defaults"] = defaults
    defaults.setdefault("creator_userid", CREATOR)
    for entry in [defaults, *data.get("tasks", [])]:
        form = entry.get("form")
        if form:
            pairs = (
                form.items()
                if isinstance(form, dict)
                else ((f["title"], f["content"]) for f in form)
            )
            entry["description"] = "\n".join(f"{t}: {c}" for t, c in pairs)
        for name in _WORKRECORD_ONLY:
            entry.pop(name, None)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@pytest.fixture(params=APIS)
def api(request) -> str:
    """Run the test once for each of DingTalk's to-do APIs."""
    return str(request.param)


ONBOARDING = """
    version: 1
    defaults:
      url: https://intranet.example.com/onboarding
      source_name: 入职流程
      originator_userid: manager7078
    tasks:
      - key: laptop
        userids: [alice01, bob02]
        title: 领取笔记本电脑
        url: https://intranet.example.com/it/laptop
        pc_url: https://intranet.example.com/it/laptop?pc=1
        pc_open_type: 2
        form:
          - {title: 任务描述, content: 到 IT 服务台领取并签收}
          - {title: 截止日期, content: 2026-12-05}
      - key: nda
        userid: alice01
        title: 签署保密协议
        form:
          说明: 在 HR 系统中在线签署
"""
