"""`dingsync emulator`: the DingTalk emulator as a server."""

from __future__ import annotations

import os

import click

from dingsync.endpoint import SANDBOX_KEY
from dingsync.endpoint import SANDBOX_SECRET
from dingsync.errors import ExitCode


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free one).")
@click.option("--data", type=click.Path(dir_okay=False), help="Persist records to this JSON file.")
@click.option("--qps", default=20.0, show_default=True, type=float, help="Per app and API; 0: off.")
@click.option(
    "--latency-ms", default=0, show_default=True, type=int, help="Added to every API answer."
)
@click.option(
    "--token-ttl", default=7200, show_default=True, type=int, help="Access token lifetime (s)."
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of workrecord calls that fail: HTTP 500, errcode -1, reset, lost answer.",
)
@click.option(
    "--fault-kinds",
    default="http500,errcode-1,reset,lost_ack",
    show_default=True,
    help="Comma-separated faults to draw from (also: ipblock, qps-global).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault draws.")
@click.option(
    "--serve-workrecord-get", is_flag=True, help="Answer topapi/workrecord/get (not in DingTalk)."
)
def emulator(
    host: str,
    port: int,
    data: str | None,
    qps: float,
    latency_ms: int,
    token_ttl: int,
    fault_rate: float,
    fault_kinds: str,
    seed: int,
    serve_workrecord_get: bool,
) -> int:
    """Run the DingTalk emulator as an HTTP server (for demos, tests and benchmarks).

    It accepts the app in DINGTALK_APP_KEY / DINGTALK_APP_SECRET when they are set, so
    that `dingsync apply --endpoint http://127.0.0.1:PORT` works with the same variables;
    otherwise the sandbox's dummy pair.
    """
    from dingsync.emulator import EmulatorConfig
    from dingsync.emulator import serve
    from dingsync.emulator.config import check_fault_settings

    kinds = tuple(k.strip() for k in fault_kinds.split(",") if k.strip())
    app_key = os.environ.get("DINGTALK_APP_KEY") or SANDBOX_KEY
    app_secret = os.environ.get("DINGTALK_APP_SECRET") or SANDBOX_SECRET
    try:
        check_fault_settings(fault_rate, kinds)
        config = EmulatorConfig(
            apps={app_key: app_secret},
            qps=qps,
            latency_ms=latency_ms,
            token_ttl=token_ttl,
            fault_rate=fault_rate,
            fault_kinds=kinds,
            seed=seed,
            serve_workrecord_get=serve_workrecord_get,
            data_path=data,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    serve(config, host, port)
    return ExitCode.OK
