"""The one error family of dingsync and the exit codes the CLI maps it to.

Every error a user is meant to see is a ``DingsyncError``; the CLI prints its message
as one line and exits with ``exit_code``. Anything else escaping the core is a bug.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    CHANGES = 2  # plan/drift --detailed-exitcode: changes or drift present
    INTERNAL = 3  # a bug: an exception that is not a DingsyncError
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


class DingsyncError(Exception):
    """Base of every error meant for the user: one clear line, exit code 1.

    ``fatal`` errors stop a whole apply (every further call would fail too: credentials,
    the monthly quota, a missing permission); the others fail only their record.
    """

    exit_code: int = ExitCode.ERROR
    fatal: bool = False

    @property
    def answer(self) -> str:
        """What happened, without the advice a final failure gives: a retry's log line
        must not tell the user to run again while dingsync is still retrying."""
        return str(self)


class Problem(NamedTuple):
    """One validation problem, located in the task file."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"


class ConfigError(DingsyncError):
    """The task file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(DingsyncError):
    """The state file cannot be read, is of an unknown format, or cannot be written."""


class LockError(DingsyncError):
    """Another dingsync process holds the state lock."""


class PlanError(DingsyncError):
    """A saved plan no longer matches the task file or the state, or is unsafe."""


class CredentialsError(DingsyncError):
    """Credentials are missing, or DingTalk refused them."""


class EndpointError(DingsyncError):
    """The endpoint URL is not acceptable (for example plain http to a remote host)."""


class ApiError(DingsyncError):
    """DingTalk answered with an error code.

    ``reason`` is the code that decides what to do: the ``sub_code`` when DingTalk wrapped
    the error in errcode 88, else the ``errcode``.
    """

    def __init__(
        self,
        api: str,
        errcode: int,
        errmsg: str,
        sub_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg
        self.sub_code = sub_code
        self.request_id = request_id
        self.reason = sub_code if (errcode == 88 and sub_code) else str(errcode)
        shown = f"{errcode}/{sub_code}" if sub_code else str(errcode)
        self._answer = f"{api}: DingTalk error {shown}: {errmsg}"
        hint = f" ({self.hint})" if self.hint else ""
        super().__init__(f"{self._answer}{hint}")

    @property
    def answer(self) -> str:
        return self._answer

    # What the user can do about it, in one clause; added to the message.
    hint: str = ""


class InvalidUserError(ApiError):
    """33012: the userid is not a member of the organisation."""

    hint = (
        "this is not a userid of the organisation: copy the userid from 管理后台 → 通讯录 → "
        "成员管理 (a member's details), not the 工号, the phone number or the unionId"
    )


class InvalidParameterError(ApiError):
    """40035 / 400002 / 40068 / 40069: the request broke a documented field rule."""


class DuplicateError(ApiError):
    """854001 (or 400001): this biz_id, or this title and form today, already reached the user."""

    hint = (
        "DingTalk's 防骚扰限制: one to-do with the same title and form per person per day, "
        "China time, and never a biz_id twice; change the title or form, or send it tomorrow"
    )


class TaskExistsError(DuplicateError):
    """v1.0 create: DingTalk already holds a to-do with this sourceId ("task exist").

    ``task_id`` is that to-do's id when DingTalk's message names it, else None (then look
    it up by sourceId). Either way the create's key landed before: adopt, never re-key.
    """

    def __init__(
        self,
        api: str,
        errcode: int,
        errmsg: str,
        sub_code: str | None = None,
        request_id: str | None = None,
        *,
        task_id: str | None = None,
    ) -> None:
        super().__init__(api, errcode, errmsg, sub_code, request_id)
        self.task_id = task_id


class DailyLimitError(ApiError):
    """854002: the user already received 100 to-dos today (Asia/Shanghai day)."""

    hint = (
        "DingTalk's 防骚扰限制: a person receives at most 100 to-dos a day, China time; "
        "the next apply after midnight China time sends the rest"
    )


class RateLimitError(ApiError):
    """90018 / 90002 / 90005 / 90006, still answered after every retry."""

    hint = (
        "DingTalk's rate limit: dingsync slowed down and retried on its own and was still "
        "refused; run again in a minute, or lower --max-qps if another job shares the app"
    )


class TransientApiError(ApiError):
    """-1 (system busy), still answered after every retry."""


class AuthError(ApiError):
    """Token or credential errors that a fresh token did not cure."""

    fatal = True


class QuotaExceededError(ApiError):
    """90020: the organisation's monthly call quota is spent; nothing more can be done."""

    fatal = True


class UnknownMethodError(ApiError):
    """22: the gateway does not know this method (for example ``workrecord/get``)."""


class PermissionDeniedError(ApiError):
    """60011 / 60020: the app lacks the permission, or the caller IP is not allowed."""

    fatal = True


class MissingPermissionError(PermissionDeniedError):
    """60011 from the legacy ``topapi/workrecord`` API: the app lacks its permission."""

    hint = (
        "the app lacks the permission of the legacy to-do API (旧版「待办任务」接口): see "
        "开发者后台 → 应用开发 → 企业内部应用 → the app → 权限管理; DingTalk no longer grants it "
        "(暂不支持新增申请), so use the credentials of an app that already holds it"
    )


class IpNotAllowedError(PermissionDeniedError):
    """60020 from the legacy API: this machine's address is not on the app's allow-list."""

    hint = (
        "this machine's egress IP address is not on the app's allow-list: add it in "
        "开发者后台 → the app → 安全设置 → 服务器出口IP, or run from an address that is on it"
    )


class TransportError(DingsyncError):
    """No usable answer: connection refused or reset, timeout, HTTP 5xx, a non-JSON body.

    ``maybe_committed`` is true when the request may have reached DingTalk and been
    applied although no answer arrived; for a create this must be resolved before
    anything is sent again.
    """

    def __init__(self, message: str, maybe_committed: bool = False) -> None:
        self.maybe_committed = maybe_committed
        super().__init__(message)


class IpBlockedError(TransportError):
    """DingTalk blocked this IP (HTML page or ``punish: deny``); it lasts minutes."""

    fatal = True


# Failures after which another try may succeed: nothing was learnt from the call, so a
# read (or a create with its own key) may go again.
UNSETTLED = (TransportError, TransientApiError, RateLimitError)
