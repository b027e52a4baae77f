"""README.zh-CN.md follows README.md: the same sections, commands and flags, all in --help.

The Chinese README names the English commit it follows in a marker line near its top
(``<!-- 同步自 README.md @ abc1234 -->``); that commit must exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from tests.test_docs import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
EN = (ROOT / "README.md").read_text(encoding="utf-8")
ZH = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")

# Every heading of README.md and the heading README.zh-CN.md gives it, in order.
HEADINGS = [
    ("## Which API", "## 选择哪个接口"),
    ("## A tour", "## 上手体验"),
    ("## The task file", "## 任务文件"),
    ("## Using it with DingTalk", "## 接入钉钉"),
    ("### In the developer console", "### 在开发者后台"),
    ("### Where userids come from", "### userid 从哪里来"),
    ("### The first apply", "### 第一次 apply"),
    ("### Moving a team from workrecord to todo", "### 从 workrecord 迁到 todo"),
    ("## In git-driven CI", "## 在 git 驱动的 CI 中使用"),
    ("## DingTalk behaviours that may surprise you", "## 钉钉中容易让人意外的行为"),
    ("## Troubleshooting", "## 常见错误排查"),
    ("## How it decides", "## dingsync 如何决策"),
    (
        "## How dingsync protects you: the state file is a cache, not the only truth",
        "## dingsync 如何保护你：状态文件只是缓存，不是唯一的真相",
    ),
    ("## Commands", "## 命令"),
    ("### Shell completion", "### Shell 补全"),
    ("### JSON output", "### JSON 输出"),
    ("## State, locking and recovery", "## 状态、锁与故障恢复"),
    ("## Calls to DingTalk", "## 钉钉调用开销"),
    ("### The monthly quota, worked out", "### 每月调用量的估算"),
    ("### workrecord/get", "### workrecord/get"),
    ("## Reliability", "## 可靠性"),
    ("## Performance", "## 性能"),
    ("## Development", "## 开发"),
    ("### How a run flows", "### 一次运行怎样走"),
    ("### Adding a field", "### 新增一个字段"),
]

MARKER = re.compile(r"<!-- 同步自 README\.md @ ([0-9a-f]{7,40}) -->")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHORT_FLAG = re.compile(r"`(-[a-zA-Z])[ /`]")
# `dingsync plan --refresh`, `$ dingsync state show ADDRESS`: the command word(s).
COMMAND_NAMES = sorted((name for name, _ in COMMANDS), key=len, reverse=True)


def headings(text: str) -> list[str]:
    outside_fences = re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)
    return [line for line in outside_fences.splitlines() if re.match(r"#{2,3} ", line)]


def flags(text: str) -> set[str]:
    return set(FLAG.findall(text)) | set(SHORT_FLAG.findall(text))


def commands(text: str) -> set[str]:
    """The dingsync command lines used: ``dingsync`` + command + flags, as written."""
    found = set()
    for match in re.finditer(r"dingsync ([^`\n|]*)", text):
        rest = match.group(1)
        name = next((n for n in COMMAND_NAMES if re.match(re.escape(n) + r"\b", rest)), None)
        if name is not None:
            found.add(f"dingsync {rest.split(' #', 1)[0].strip()}")
    return found


def help_flags() -> set[str]:
    from dingsync.cli import cli

    known = {"--version", "--help", "-h"}
    for _, command in [("", cli), *COMMANDS]:
        for param in command.params:
            if isinstance(param, click.Option):
                known.update(param.opts)
                known.update(param.secondary_opts)
    return known


def test_the_headings_table_covers_every_english_heading() -> None:
    assert headings(EN) == [en for en, _ in HEADINGS]


def test_the_chinese_readme_has_the_same_sections_in_the_same_order() -> None:
    assert headings(ZH) == [zh for _, zh in HEADINGS]


def test_both_readmes_use_the_same_commands() -> None:
    assert sorted(commands(EN) - commands(ZH)) == []
    assert sorted(commands(ZH) - commands(EN)) == []


def test_both_readmes_use_the_same_flags() -> None:
    assert sorted(flags(EN) - flags(ZH)) == []
    assert sorted(flags(ZH) - flags(EN)) == []


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_every_flag_in_a_readme_is_in_the_help(readme: str) -> None:
    text = (ROOT / readme).read_text(encoding="utf-8")
    unknown = sorted(flags(text) - help_flags())
    assert unknown == []


def test_the_sync_marker_names_a_commit_of_this_repository() -> None:
    top = "\n".join(ZH.splitlines()[:10])
    found = MARKER.search(top)
    assert found, "README.zh-CN.md needs <!-- 同步自 README.md @ <commit> --> near its top"
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = subprocess.run(
        [git, "-C", str(ROOT), "cat-file", "-e", f"{found.group(1)}^{{commit}}"],
        capture_output=True,
    )
    assert check.returncode == 0, f"commit {found.group(1)} is not in this repository"
