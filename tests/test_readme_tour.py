"""README.md's "A tour", run command by command as a shell would, against what it prints.

Every ``$ `` line of the tour's console blocks runs, in order, in one bash whose output
goes to a terminal (a pseudo-terminal, so that dingsync prints what a user sees: progress
bars instead of one line per change), in a temporary folder holding a copy of
``examples/``. Its output (stdout and stderr, as the terminal shows them) must be the
lines the README prints under it, except for record ids, the rate and ETA of a progress
bar, and the emulator's port, which cannot be the same from run to run. A record id the
README shows and a later command uses (``curl .../records/RECORD_ID/complete``) is
replaced by the id the run printed in the same place.

``dingsync emulator`` is a server: the tour starts it in a second terminal, so it runs
in the background, with the environment a new terminal has (none of the tour's
``export`` lines), until the tour ends.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TOUR_PORT = 8080
COMMAND_TIMEOUT = 30.0
# A marker bash prints after each command, with its exit status: never in real output.
MARK = re.compile(rb"\x1e(\d+)\x1e\r?\n")
RECORD_ID = re.compile(r"record[0-9a-f]{32}")
# A progress bar's last drawing: "Applying   ████ 14/14   21.3/s  ETA --".
BAR_RATE = re.compile(r"(\d+/\d+) +\d+\.\d/s  ETA \S+")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")

pytestmark = pytest.mark.skipif(
    not shutil.which("curl"), reason="the tour plays DingTalk users with curl"
)


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour_section(text: str) -> str:
    start = text.index("\n## A tour\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def tour_steps(section: str) -> list[Step]:
    """The ``$ `` commands of the section's console blocks, each with the lines under it."""
    steps: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```$", section, flags=re.M | re.S):
        lines = block.splitlines()
        assert lines and lines[0].startswith("$ "), f"a console block starts with `$ `: {block}"
        for line in lines:
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            else:
                steps[-1].expected.append(line)
    for step in steps:
        # A blank line between one command's output and the next `$ ` is layout.
        while step.expected and not step.expected[-1].strip():
            step.expected.pop()
    return steps


def screen(raw: bytes) -> list[str]:
    """What a terminal shows for ``raw``: a carriage return or an erased line draws over."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    lines = [line.rsplit("\r", 1)[-1].replace("\x1b[2K", "") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def normal(lines: list[str]) -> list[str]:
    """Lines with what differs from run to run put aside: record ids, bar rates, times."""
    result = []
    for line in lines:
        line = RECORD_ID.sub("record<ID>", line)
        line = BAR_RATE.sub(r"\1  <RATE>/s  ETA <ETA>", line)
        result.append(ISO_TIME.sub("<TIME>", line))
    return result


class Shell:
    """One bash, its commands read from a pipe, its output on a pseudo-terminal."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.pending = b""

    def run(self, command: str) -> tuple[list[str], int]:
        assert self.process.stdin is not None
        script = f'{command}\n__rc=$?; printf "\\036%d\\036\\n" "$__rc"; (exit "$__rc")\n'
        self.process.stdin.write(script.encode("utf-8"))
        self.process.stdin.flush()
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while not (found := MARK.search(self.pending)):
            left = deadline - time.monotonic()
            assert left > 0, f"`{command}` did not finish; it printed {self.pending!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the terminal closed: bash is gone
                    chunk = b""
                assert chunk, f"the shell ended during `{command}`: {self.pending!r}"
                self.pending += chunk
        output, self.pending = self.pending[: found.start()], self.pending[found.end() :]
        return screen(output), int(found.group(1))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a command that hangs: end it and its shell
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            os.close(self.master)


class Server:
    """A command that keeps running (``dingsync emulator``), in a terminal of its own."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )

    def first_lines(self, count: int) -> list[str]:
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while len(lines) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"`{self.command}` printed only {lines}"
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                line = self.process.stdout.readline()
                assert line, f"`{self.command}` ended: {lines}, exit {self.process.wait()}"
                lines.append(line.decode("utf-8").rstrip("\n"))
        return lines

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            assert self.process.stdout is not None
            self.process.stdout.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_terminal_env() -> dict[str, str]:
    """The environment of a new terminal, as the tour assumes it: NO_COLOR=1, no
    DingTalk settings of this machine's, dingsync on the PATH, loopback never proxied."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DINGTALK_", "DINGSYNC_", "COMP_", "_DINGSYNC_"))
        and name != "GITHUB_STEP_SUMMARY"
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NO_COLOR"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class RecordIds:
    """Pairs the README's record ids with the ones this run printed in the same places."""

    def __init__(self) -> None:
        self.actual: dict[str, str] = {}

    def learn(self, expected: list[str], got: list[str], command: str) -> None:
        shown = RECORD_ID.findall("\n".join(expected))
        real = RECORD_ID.findall("\n".join(got))
        # The lines are equal but for the ids, so the ids pair up in order.
        for readme_id, run_id in zip(shown, real, strict=True):
            known = self.actual.setdefault(readme_id, run_id)
            assert known == run_id, (
                f"the README shows {readme_id} for two records ({known}, {run_id}); "
                f"under `{command}`"
            )

    def substitute(self, command: str) -> str:
        for readme_id in RECORD_ID.findall(command):
            assert readme_id in self.actual, (
                f"`{command}` uses {readme_id}, which no output above it shows"
            )
            command = command.replace(readme_id, self.actual[readme_id])
        return command


def test_the_tour_has_the_promised_steps():
    steps = tour_steps(tour_section(README.read_text(encoding="utf-8")))
    commands = [step.command for step in steps]
    for wanted in (
        "dingsync validate",
        "dingsync plan",
        "dingsync apply",
        "--detailed-exitcode",
        "cp examples/tour/",
        "dingsync emulator",
        "/_emulator/records/",
        "dingsync drift",
    ):
        assert any(wanted in command for command in commands), wanted
    for path in re.findall(r"examples/[\w./-]+\.yaml", "\n".join(commands)):
        assert (ROOT / path).is_file(), path


def test_the_tour_prints_what_the_readme_shows(tmp_path):
    steps = tour_steps(tour_section(README.read_text(encoding="utf-8")))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = free_port()
    env = new_terminal_env()
    shell = Shell(tmp_path, env)
    servers: list[Server] = []
    ids = RecordIds()
    try:
        for step in steps:
            command = ids.substitute(step.command)
            command = command.replace(f"127.0.0.1:{TOUR_PORT}", f"127.0.0.1:{port}")
            command = command.replace(f"--port {TOUR_PORT}", f"--port {port}")
            if step.command.startswith("dingsync emulator"):
                servers.append(Server(command, tmp_path, env))
                got = servers[-1].first_lines(len(step.expected))
            else:
                got, _ = shell.run(command)
            got = [line.replace(f"127.0.0.1:{port}", f"127.0.0.1:{TOUR_PORT}") for line in got]
            assert normal(got) == normal(step.expected), f"$ {step.command}"
            ids.learn(step.expected, got, step.command)
    finally:
        shell.close()
        for server in servers:
            server.stop()
