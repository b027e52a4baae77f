"""The docs keep up with the code: every command has help and is in both READMEs."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from dingsync.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    # Through list_commands/get_command, as --help does: the top group loads its commands
    # only when asked, so its `commands` dict starts empty.
    ctx = click.Context(group)
    found = []
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += all_commands(command, prefix + name + " ")
    return found


COMMANDS = all_commands(cli)


def test_every_command_is_found():
    names = {name for name, _ in COMMANDS}
    assert {"validate", "plan", "apply", "drift", "state list", "import", "schema"} <= names


@pytest.mark.parametrize("name,command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_has_help(name, command):
    assert command.help and len(command.help.strip()) > 20, name
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name} {param.opts[0]} has no help text"


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_every_command_is_in_the_readme(readme):
    text = (ROOT / readme).read_text(encoding="utf-8")
    missing = [name for name, _ in COMMANDS if f"`{name}" not in text]
    assert missing == []


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in first_block.splitlines() if line.strip()]
    assert lines[0].startswith(
        "pip install . && dingsync apply --sandbox -y -f examples/tasks.yaml"
    )
    assert lines[1].startswith("pip install -e '.[test]' && python -m pytest")


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -e '.[test]'" in ci
    assert ci.rstrip().endswith("python -m pytest")


def test_every_package_is_shipped():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dingsync").rglob("__init__.py")
    }
    assert found <= shipped
