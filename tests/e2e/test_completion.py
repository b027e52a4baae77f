"""Shell completion: click's protocol through the lazy command group, and README.md's lines.

Each test runs the installed ``dingsync`` program as a shell's completion script does:
``_DINGSYNC_COMPLETE`` names what is asked, ``COMP_WORDS`` and ``COMP_CWORD`` what was typed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def shell_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMP_", "_DINGSYNC_"))
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(extra)
    return env


def dingsync(**extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dingsync")],
        env=shell_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def bash_complete(typed: str) -> list[tuple[str, str]]:
    """(type, value) pairs, as click answers bash for the last word of ``typed``."""
    words = typed.split(" ")
    done = dingsync(
        _DINGSYNC_COMPLETE="bash_complete", COMP_WORDS=typed, COMP_CWORD=str(len(words) - 1)
    )
    assert done.returncode == 0, done.stderr
    pairs = (line.partition(",") for line in done.stdout.splitlines())
    return [(kind, value) for kind, _, value in pairs]


def completion_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n### Shell completion\n")
    return text[start : text.index("\n#", start + 1)]


def readme_line(shell: str) -> str:
    """The README's enabling line for ``shell``, from the section's code block."""
    block = re.search(r"```sh\n(.*?)```", completion_section(), flags=re.S)
    assert block, "the Shell completion section has a sh block"
    lines = [line for line in block.group(1).splitlines() if f"={shell}_source " in line]
    assert len(lines) == 1, f"one line for {shell}: {lines}"
    return lines[0]


def test_a_command_name_is_completed():
    assert bash_complete("dingsync ap") == [("plain", "apply")]


def test_every_command_is_offered():
    offered = [value for _, value in bash_complete("dingsync ")]
    assert offered == [
        "validate",
        "plan",
        "apply",
        "drift",
        "state",
        "import",
        "force-unlock",
        "schema",
        "emulator",
    ]


def test_a_subcommand_of_a_lazily_loaded_group_is_completed():
    assert bash_complete("dingsync state ") == [
        ("plain", "list"),
        ("plain", "rm"),
        ("plain", "show"),
    ]


def test_options_and_choices_of_a_lazily_loaded_command_are_completed():
    assert bash_complete("dingsync apply --no") == [("plain", "--no-refresh")]
    assert bash_complete("dingsync plan --format ") == [
        ("plain", "text"),
        ("plain", "json"),
        ("plain", "markdown"),
    ]


def test_a_task_file_completes_as_a_path():
    assert bash_complete("dingsync validate -f ") == [("file", "")]


def test_zsh_and_fish_get_their_own_answers():
    zsh = dingsync(_DINGSYNC_COMPLETE="zsh_complete", COMP_WORDS="dingsync ap", COMP_CWORD="1")
    assert zsh.returncode == 0, zsh.stderr
    assert zsh.stdout.splitlines()[:2] == ["plain", "apply"]  # type, value, then its help
    # fish sends the word being completed, not its index.
    fish = dingsync(_DINGSYNC_COMPLETE="fish_complete", COMP_WORDS="dingsync ap", COMP_CWORD="ap")
    assert fish.returncode == 0, fish.stderr
    assert [line.split("\t")[0] for line in fish.stdout.splitlines()] == ["plain,apply"]


def test_an_unknown_instruction_prints_nothing_and_fails():
    done = dingsync(_DINGSYNC_COMPLETE="tcsh_source")
    assert done.returncode == 1 and done.stdout == ""


def test_every_instruction_the_readme_names_prints_a_script():
    named = re.findall(r"_DINGSYNC_COMPLETE=(\w+) dingsync", completion_section())
    assert {"bash_source", "zsh_source", "fish_source"} <= set(named)
    for instruction in named:
        done = dingsync(_DINGSYNC_COMPLETE=instruction)
        assert done.returncode == 0, instruction
        assert "_dingsync_completion" in done.stdout, instruction


def test_the_readme_bash_line_sets_up_completion_in_bash():
    script = "\n".join(
        [
            readme_line("bash"),
            "complete -p dingsync",
            "COMP_WORDS=(dingsync ap); COMP_CWORD=1",
            "_dingsync_completion dingsync",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "complete -o nosort -F _dingsync_completion dingsync",
        "apply",
    ]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed")
def test_the_readme_zsh_line_registers_completion_in_zsh():
    script = "\n".join(
        ["autoload -Uz compinit && compinit -u -D", readme_line("zsh"), "print $_comps[dingsync]"]
    )
    done = subprocess.run(
        ["zsh", "-f", "-c", script], env=shell_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_dingsync_completion"


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed")
def test_the_readme_fish_line_completes_in_fish():
    script = "\n".join([readme_line("fish"), "complete --do-complete 'dingsync ap'"])
    done = subprocess.run(
        ["fish", "--no-config", "-c", script],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["apply"]
