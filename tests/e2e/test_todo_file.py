"""A task file for the v1.0 to-do API (api: todo): checked in full, not yet planned."""

from __future__ import annotations

from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks

TODO = """
    version: 1
    api: todo
    namespace: onboarding
    on_removal: delete
    defaults:
      creator_userid: hr-bot01
      url: https://intranet.example.com/onboarding
    tasks:
      - key: laptop
        userids: [alice01, bob02]
        title: 领取笔记本电脑和显示器
        description: 到三楼 IT 服务台领取并签收
        pc_url: https://intranet.example.com/it/laptop?pc=1
        due_time: 2026-12-05
        priority: high
        ding: false
"""


def test_a_todo_file_is_valid(workdir):
    write_tasks(workdir / "tasks.yaml", TODO)
    run = dingsync("validate", "--json")
    assert run.code == 0, run.err
    assert run.json()["records"] == 2


def test_a_todo_file_is_not_planned_or_applied_yet(workdir, emulator):
    write_tasks(workdir / "tasks.yaml", TODO)
    for args in (("plan",), ("apply", "-y")):
        run = dingsync(*args)
        assert run.code == 1, args
        assert "cannot plan or apply them yet" in run.err
    assert emulator.call_counts().get("workrecord/add", 0) == 0
    assert not (workdir / "state").exists()
