"""Run the CI jobs of examples/ci/ and action.yml on this machine, as the CI services would.

Only what decides where the state ends up is real: every shell step runs in bash, in a clone
of a local bare repository that stands for the project on GitHub or GitLab, with
dingsync talking to the emulator. What a CI service does around the shell is imitated:

* GitHub Actions: a job's steps in order, ``${{ }}`` expressions in ``with:``, ``env:`` and
  ``if:`` (a small evaluator: contexts, literals, ``== != && || !``, the status functions),
  a composite action's steps, step outputs, the job summary, and the actions the recipes
  use (checkout clones the bare repository, upload-artifact copies files, setup-python and
  cache do nothing here).
* GitLab CI: ``extends``, ``default``, ``!reference``, variables (expanded as GitLab
  does), ``before_script`` and ``script`` in one shell, ``after_script`` in another whose
  failure does not fail the job, and artifacts kept ``when: always``.

A job can be cancelled mid-step: when a condition holds, its shell's process group gets
SIGTERM, as a runner that kills the job's processes does, and the job goes on with the
steps a cancelled job still runs. ``pip install`` is recorded instead of run: the recipes
install a released dingsync, and the tests run the one under test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
CI = ROOT / "examples" / "ci"
STEP_TIMEOUT = 120  # seconds; a step that hangs fails the test instead of blocking it

# Stands in for `python -m pip` and `pip`: records the arguments, runs the real Python else.
_SHIM = """#!{python}
import os, sys
args = sys.argv[1:]
pip = os.path.basename(sys.argv[0]) == "pip"
if not pip and args[:2] == ["-m", "pip"]:
    pip, args = True, args[2:]
if pip:
    with open(os.environ["HARNESS_PIP_LOG"], "a", encoding="utf-8") as log:
        log.write("\\0".join(args) + "\\n")
    sys.exit(0)
os.execv({python!r}, [{python!r}, *args])
"""


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    """git with a fixed identity (the jobs' own git calls get none: they must set theirs)."""
    run = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_git_env(),
    )
    if check and run.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {run.stderr}")
    return run.stdout


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    return env


class Remote:
    """A bare repository standing for the project's repository on the CI service."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "remote.git"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.path))
        self._seed = root / "seed"
        git("clone", "--quiet", str(self.path), str(self._seed))
        git("checkout", "--quiet", "-b", "main", cwd=self._seed)
        self._clones = 0

    def commit(self, files: Mapping[str, str | None], message: str, branch: str = "main") -> str:
        """Commit files (None removes one) on top of branch, push, and return the commit."""
        work = self._clone(branch)
        for name, text in files.items():
            path = work / name
            if text is None:
                git("rm", "--quiet", "--", name, cwd=work)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            git("add", "--", name, cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return self.head(branch)

    def branch(self, name: str, at: str) -> None:
        git("--git-dir", str(self.path), "branch", name, at)

    def head(self, branch: str = "main") -> str:
        return git("--git-dir", str(self.path), "rev-parse", f"refs/heads/{branch}").strip()

    def show(self, path: str, ref: str = "main") -> str | None:
        run = subprocess.run(
            ["git", "--git-dir", str(self.path), "show", f"{ref}:{path}"],
            capture_output=True,
            text=True,
            env=_git_env(),
        )
        return run.stdout if run.returncode == 0 else None

    def branches(self) -> list[str]:
        out = git("--git-dir", str(self.path), "for-each-ref", "--format=%(refname:short)")
        return out.split()

    def log(self, ref: str = "main") -> list[str]:
        return git("--git-dir", str(self.path), "log", "--format=%s", ref).splitlines()

    def checkout(self, ref: str = "main") -> Path:
        """A fresh clone at ref, for reading what was pushed with dingsync itself."""
        return self._clone(ref)

    def _clone(self, ref: str) -> Path:
        self._clones += 1
        work = self.root / f"clone-{self._clones}"
        if self.head_or_none(ref) is None:
            shutil.copytree(self._seed, work)
        else:
            git("clone", "--quiet", "--branch", ref, str(self.path), str(work))
        return work

    def head_or_none(self, branch: str) -> str | None:
        run = subprocess.run(
            ["git", "--git-dir", str(self.path), "rev-parse", "--verify", "-q", branch],
            capture_output=True,
            text=True,
            env=_git_env(),
        )
        return run.stdout.strip() if run.returncode == 0 else None


@dataclass
class JobResult:
    status: str  # success, failure or cancelled
    log: str
    steps: dict[str, str] = field(default_factory=dict)  # step id -> outcome
    artifacts: Path | None = None
    summary: str = ""
    pip: list[list[str]] = field(default_factory=list)  # each `pip install` of the job
    after_script_ok: bool | None = None


class Runner:
    """What a CI runner gives every job: a workspace, tools on PATH, a base environment."""

    def __init__(self, root: Path, remote: Remote, env: Mapping[str, str]) -> None:
        self.root = root
        self.remote = remote
        self.base_env = dict(env)
        self._jobs = 0

    def new_job(self) -> tuple[Path, dict[str, str]]:
        self._jobs += 1
        job = self.root / f"job-{self._jobs}"
        bin_dir = job / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("python", "pip"):
            shim = bin_dir / name
            shim.write_text(_SHIM.format(python=sys.executable), encoding="utf-8")
            shim.chmod(0o755)
        home = job / "home"
        home.mkdir()
        gitconfig = job / "gitconfig"
        gitconfig.write_text("", encoding="utf-8")
        env = {
            "PATH": os.pathsep.join(
                [str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
            ),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "HARNESS_PIP_LOG": str(job / "pip.log"),
            **self.base_env,
        }
        return job, env

    def map_url(self, env: Mapping[str, str], url: str) -> None:
        """Make git reach the bare repository through url (as the CI service's host)."""
        with open(env["GIT_CONFIG_GLOBAL"], "a", encoding="utf-8") as fh:
            fh.write(f'[url "{self.remote.path}"]\n\tinsteadOf = {url}\n')


@dataclass
class Watch:
    """While the step (GitHub: its id; GitLab: 'script') runs, call then(process group) once
    when() first holds; a watch that cancels marks the job cancelled."""

    step: str
    when: Callable[[], bool]
    then: Callable[[int], None]
    cancels: bool = False
    fired: bool = False


def cancel(step: str, when: Callable[[], bool]) -> Watch:
    """Cancel the job as a runner that kills the step's processes does: SIGTERM to them all."""
    return Watch(step, when, lambda group: os.killpg(group, signal.SIGTERM), cancels=True)


def _run_shell(
    script: str,
    cwd: Path,
    env: Mapping[str, str],
    watch: Watch | None,
    shell: list[str],
) -> tuple[int, str, bool]:
    """Run script; return (exit code, output, whether it was cancelled)."""
    script_file = cwd.parent / f"step-{time.monotonic_ns()}.sh"
    script_file.write_text(script, encoding="utf-8")
    out_file = cwd.parent / f"{script_file.name}.out"
    with open(out_file, "wb") as out:
        proc = subprocess.Popen(
            [*shell, str(script_file)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STEP_TIMEOUT
        cancelled = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"step ran over {STEP_TIMEOUT}s:\n{script}")
            if watch is not None and not watch.fired and watch.when():
                watch.fired = True
                cancelled = watch.cancels
                watch.then(proc.pid)
            time.sleep(0.02)
    return proc.returncode, out_file.read_text(encoding="utf-8", errors="replace"), cancelled


def _read_pip_log(env: Mapping[str, str]) -> list[list[str]]:
    path = Path(env["HARNESS_PIP_LOG"])
    if not path.exists():
        return []
    return [line.split("\0") for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- GitHub expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||!|\(|\))|(?P<call>[A-Za-z_]\w*)\(\)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)
_STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


def evaluate(expression: str, contexts: Mapping[str, Any], status: str = "success") -> Any:
    """Evaluate a GitHub expression (the subset the recipes use); unknown names are null."""
    python: list[str] = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"expression not understood at {text[pos:]!r}: {expression!r}")
        pos = match.end()
        kind = match.lastgroup
        token = match.group(kind)
        if kind == "str":
            python.append(repr(token[1:-1].replace("''", "'")))
        elif kind == "num":
            python.append(token)
        elif kind == "op":
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(token, f" {token} "))
        elif kind == "call":
            if token not in _STATUS_FUNCTIONS:
                raise ValueError(f"function {token}() not supported: {expression!r}")
            python.append(repr({"always": True}.get(token, status == token)))
        elif token in ("true", "false", "null"):
            python.append({"true": "True", "false": "False", "null": "None"}[token])
        else:
            python.append(repr(_lookup(contexts, token)))
    return eval("".join(python), {"__builtins__": {}})  # noqa: S307 (tokens checked above)


def _lookup(contexts: Mapping[str, Any], dotted: str) -> Any:
    value: Any = contexts
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def interpolate(text: Any, contexts: Mapping[str, Any]) -> str:
    """A with:/env: value with each ``${{ }}`` replaced, as GitHub does before a step runs."""
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: _as_text(evaluate(m.group(1), contexts)), _as_text(text)
    )


def condition(text: Any, contexts: Mapping[str, Any], status: str) -> bool:
    """An ``if:``; without a status function it holds only while the job succeeds."""
    if text is None:
        return status == "success"
    expression = str(text).strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    if not any(f"{name}()" in expression for name in _STATUS_FUNCTIONS):
        expression = f"success() && ({expression})"
    return bool(evaluate(expression, contexts, status))


# ---------------------------------------------------------------- GitHub Actions


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_GitLabLoader)


@dataclass
class GitHubEvent:
    name: str  # push, pull_request, workflow_dispatch
    ref: str  # branch the run is for (a pull request's head branch for pull_request)
    inputs: dict[str, Any] = field(default_factory=dict)
    number: int = 1  # the pull request's

    def context(self, remote: Remote) -> dict[str, Any]:
        return {
            "event_name": self.name,
            "ref": f"refs/heads/{self.ref}" if self.name != "pull_request" else "refs/pull/1",
            "ref_name": self.ref,
            "sha": remote.head(self.ref),
            "repository": "example/todos",
            "server_url": "https://github.com",
            "run_id": "4242",
            "workflow": "dingsync",
            "token": "ghs_test_token",
            "event": {
                "repository": {"default_branch": "main"},
                "pull_request": {"number": self.number},
            },
        }


class GitHubJob:
    """One job of a workflow, run step by step."""

    def __init__(
        self,
        runner: Runner,
        event: GitHubEvent,
        secrets: Mapping[str, str],
        watch: Watch | None = None,
        before: Mapping[str, Callable[[], None]] | None = None,
        with_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.runner = runner
        self.event = event
        self.secrets = dict(secrets)
        self.watch = watch
        self.before = dict(before or {})
        self.with_overrides = dict(with_overrides or {})
        self.dir, self.env = runner.new_job()
        self.workspace = self.dir / "workspace"
        self.workspace.mkdir()
        self.artifacts = self.dir / "artifacts"
        self.summary = self.dir / "summary.md"
        self.summary.touch()
        self.status = "success"
        self.outcomes: dict[str, str] = {}
        self.log: list[str] = []
        self.github = event.context(runner.remote)
        self.env.update(
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_STEP_SUMMARY": str(self.summary),
                "GITHUB_SERVER_URL": self.github["server_url"],
                "GITHUB_REPOSITORY": self.github["repository"],
                "GITHUB_RUN_ID": self.github["run_id"],
                "GITHUB_EVENT_NAME": event.name,
                "GITHUB_REF_NAME": event.ref,
                "RUNNER_OS": "Linux",
                "RUNNER_TEMP": str(self.dir / "tmp"),
            }
        )

    def run(self, job: Mapping[str, Any]) -> JobResult:
        contexts = {
            "github": self.github,
            "inputs": self.event.inputs,
            "secrets": self.secrets,
            "runner": {"os": "Linux", "temp": self.env["RUNNER_TEMP"]},
        }
        self._steps(job["steps"], contexts, self.env, action_path=None)
        return JobResult(
            status=self.status,
            log="\n".join(self.log),
            steps=dict(self.outcomes),
            artifacts=self.artifacts,
            summary=self.summary.read_text(encoding="utf-8"),
            pip=_read_pip_log(self.env),
        )

    def _steps(
        self,
        steps: list[Mapping[str, Any]],
        contexts: dict[str, Any],
        env: Mapping[str, str],
        action_path: Path | None,
    ) -> None:
        step_results: dict[str, Any] = {}
        contexts = {**contexts, "steps": step_results}
        for index, step in enumerate(steps):
            step_id = step.get("id", f"step{index}")
            if not condition(step.get("if"), contexts, self.status):
                step_results[step_id] = {"outcome": "skipped", "outputs": {}}
                self.outcomes[step_id] = "skipped"
                continue
            if step_id in self.before:
                self.before[step_id]()
            step_env = {
                **env,
                **{k: interpolate(v, contexts) for k, v in step.get("env", {}).items()},
            }
            outputs: dict[str, str] = {}
            if "run" in step:
                ok = self._run_step(step_id, step["run"], step_env, action_path, outputs)
            else:
                ok = self._uses(step, contexts, step_env)
            outcome = "success" if ok else "failure"
            step_results[step_id] = {"outcome": outcome, "outputs": outputs}
            self.outcomes[step_id] = outcome
            if not ok and self.status == "success":
                self.status = "failure"

    def _run_step(
        self,
        step_id: str,
        script: str,
        env: dict[str, str],
        action_path: Path | None,
        outputs: dict[str, str],
    ) -> bool:
        output_file = self.dir / f"output-{step_id}-{time.monotonic_ns()}"
        output_file.touch()
        env = {**env, "GITHUB_OUTPUT": str(output_file)}
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(action_path)
        watch = self.watch if self.watch and self.watch.step == step_id else None
        # GitHub's `shell: bash`: bash --noprofile --norc -eo pipefail {0}
        code, out, cancelled = _run_shell(
            script, self.workspace, env, watch, ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        )
        self.log.append(f"--- {step_id} (exit {code})\n{out}")
        if cancelled:
            self.status = "cancelled"
        for line in output_file.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            outputs[name] = value
        return code == 0

    def _uses(self, step: Mapping[str, Any], contexts: dict[str, Any], env: dict[str, str]) -> bool:
        uses = step["uses"]
        with_ = {k: interpolate(v, contexts) for k, v in step.get("with", {}).items()}
        name = uses.split("@", 1)[0]
        if name == "actions/checkout":
            target = self.workspace / with_.get("path", "")
            ref = with_.get("ref") or self.event.ref
            if target == self.workspace:
                git("clone", "--quiet", "--branch", ref, str(self.runner.remote.path), str(target))
            else:
                git(
                    "clone",
                    "--quiet",
                    "--depth=1",
                    "--branch",
                    ref,
                    str(self.runner.remote.path),
                    str(target),
                )
            return True
        if name in ("actions/setup-python", "actions/cache"):
            return True
        if name == "actions/upload-artifact":
            destination = self.artifacts / with_["name"]
            for line in with_["path"].splitlines():
                source = self.workspace / line.strip()
                if line.strip() and source.is_file():
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, destination / source.name)
            return True
        if name.endswith("/dingsync") or uses == "./":
            return self._composite(with_, env)
        raise AssertionError(f"the harness does not know the action {uses}")

    def _composite(self, with_: Mapping[str, str], env: dict[str, str]) -> bool:
        action = load_yaml(ACTION)
        inputs = {}
        for name, spec in action["inputs"].items():
            default = interpolate(spec.get("default", ""), {"github": self.github})
            inputs[name] = with_.get(name, default)
        unknown = set(with_) - set(inputs)
        assert not unknown, f"inputs the action does not have: {sorted(unknown)}"
        inputs.update(self.with_overrides)
        contexts = {"github": self.github, "inputs": inputs, "runner": {"os": "Linux"}}
        self._steps(action["runs"]["steps"], contexts, env, action_path=ROOT)
        return self.status == "success"


# ---------------------------------------------------------------- GitLab CI


class Reference(list):  # type: ignore[type-arg]
    """A ``!reference [job, key]`` tag, resolved when a job is built."""


class _GitLabLoader(yaml.SafeLoader):
    pass


_GitLabLoader.add_constructor(
    "!reference", lambda loader, node: Reference(loader.construct_sequence(node))
)


def _resolve(pipeline: Mapping[str, Any], lines: list[Any]) -> list[str]:
    resolved: list[str] = []
    for line in lines:
        if isinstance(line, Reference):
            target: Any = pipeline
            for key in line:
                target = target[key]
            resolved.extend(_resolve(pipeline, target))
        else:
            resolved.append(line)
    return resolved


def gitlab_job(pipeline: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A job as GitLab builds it: extends merged (hashes deeply), default's keys filled in."""
    job = dict(pipeline[name])
    if "extends" in job:
        base = gitlab_job(pipeline, job.pop("extends"))
        merged = dict(base)
        for key, value in job.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merged[key] = {**base[key], **value}
            else:
                merged[key] = value
        job = merged
    for key, value in pipeline.get("default", {}).items():
        job.setdefault(key, value)
    for key in ("before_script", "script", "after_script"):
        if key in job:
            job[key] = _resolve(pipeline, job[key])
    return job


def expand(value: str, variables: Mapping[str, str]) -> str:
    """GitLab's expansion of $NAME and ${NAME} in a variable's value."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))",
        lambda m: variables.get(m.group(1) or m.group(2), ""),
        value,
    )


class GitLabJob:
    def __init__(
        self,
        runner: Runner,
        predefined: Mapping[str, str],
        watch: Watch | None = None,
        before_after_script: Callable[[], None] | None = None,
    ) -> None:
        self.runner = runner
        self.predefined = dict(predefined)
        self.watch = watch
        self.before_after_script = before_after_script

    def run(self, pipeline: Mapping[str, Any], name: str, checkout: str) -> JobResult:
        job = gitlab_job(pipeline, name)
        job_dir, env = self.runner.new_job()
        workspace = job_dir / "workspace"
        git("clone", "--quiet", str(self.runner.remote.path), str(workspace))
        # GitLab checks the pipeline's commit out detached.
        git("checkout", "--quiet", "--detach", checkout, cwd=workspace)
        variables = dict(self.predefined)
        variables["CI_PROJECT_DIR"] = str(workspace)
        for source in (pipeline.get("variables", {}), job.get("variables", {})):
            for key, value in source.items():
                variables[key] = expand(str(value), variables)
        env.update(variables)
        if "DINGSYNC_REMOTE" in variables:
            self.runner.map_url(env, variables["DINGSYNC_REMOTE"])
        log: list[str] = []
        script = "\n".join([*job.get("before_script", []), *job["script"]]) + "\n"
        watch = self.watch if self.watch and self.watch.step == "script" else None
        code, out, cancelled = _run_shell(
            script, workspace, env, watch, ["bash", "-eo", "pipefail"]
        )
        log.append(f"--- script (exit {code})\n{out}")
        status = "cancelled" if cancelled else ("success" if code == 0 else "failure")
        after_ok = None
        if "after_script" in job:
            if self.before_after_script is not None:
                self.before_after_script()
            after = "\n".join(job["after_script"]) + "\n"
            after_code, after_out, _ = _run_shell(
                after, workspace, env, None, ["bash", "-eo", "pipefail"]
            )
            log.append(f"--- after_script (exit {after_code})\n{after_out}")
            after_ok = after_code == 0
        artifacts = job_dir / "artifacts"
        spec = job.get("artifacts", {})
        if spec and (spec.get("when") == "always" or status == "success"):
            for pattern in spec.get("paths", []):
                for source in workspace.glob(pattern):
                    target = artifacts / source.relative_to(workspace)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target)
        return JobResult(
            status=status,
            log="\n".join(log),
            artifacts=artifacts,
            pip=_read_pip_log(env),
            after_script_ok=after_ok,
        )
