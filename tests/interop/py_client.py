#!/usr/bin/env python3
"""Interop probe: drive an MCP endpoint with the official Python client (`mcp` 2.3.0).

Connects, lists tools, calls one tool and checks its text output; optionally exercises the
server->client features of @modelcontextprotocol/server-everything (sampling, elicitation,
roots, progress) through whatever sits in between (normally the Switchboard gateway).

    py_client.py --url http://127.0.0.1:8080/mcp --mode auto \\
        --header 'Authorization: Bearer t0k' \\
        --expect-tool echo --expect-absent other__echo \\
        --call echo --args '{"text":"hi"}' --expect-text hi

    py_client.py --url http://127.0.0.1:8080/mcp --mode legacy --everything-fidelity

Tool names are matched exactly or by suffix, because the gateway exposes upstream tools as
`<server>__<tool>` (so `--call echo` finds `fixture__echo`); `--expect-absent` names are
matched exactly (give the exposed name, e.g. `beta__echo`). On success one JSON line is
printed on stdout and the exit code is 0; any failure prints `py_client: FAIL: ...` on
stderr and exits 1 (2 for usage errors).

Run it with the venv from scripts/install-peers.sh: `$SWITCHBOARD_PYTHON py_client.py ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

FIDELITY_ROOT_URI = "file:///tmp/switchboard-fidelity-root"
SAMPLING_REPLY = "switchboard-sampled-reply"


class ProbeError(Exception):
    """A failed expectation; the message is shown to the user as is."""


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"py_client: bad --header {item!r} (expected 'Name: value')")
        headers[name.strip()] = value.strip()
    return headers


def find_tool(names: list[str], wanted: str) -> str | None:
    """Exact match first, then a gateway-prefixed one (`<server>__<wanted>`), then any suffix."""
    if wanted in names:
        return wanted
    for suffix in (f"__{wanted}", wanted):
        hits = [n for n in names if n.endswith(suffix)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ProbeError(f"tool {wanted!r} is ambiguous: {hits}")
    return None


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


def root_cause(exc: BaseException) -> BaseException:
    """Unwrap anyio/asyncio exception groups so the message names the real failure."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) >= 1:
        exc = exc.exceptions[0]
    return exc


def sample_value(prop: dict[str, Any]) -> Any:
    """A plausible value for one elicitation schema property."""
    if "default" in prop:
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    if prop.get("oneOf"):
        return prop["oneOf"][0].get("const")
    kind = prop.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return prop.get("minimum", 1)
    if kind == "array":
        items = prop.get("items", {})
        choices = items.get("enum") or [o.get("const") for o in items.get("anyOf", [])]
        return choices[:1]
    fmt = prop.get("format")
    return {"email": "test@example.com", "uri": "https://example.com", "date": "2000-01-01"}.get(fmt, "switchboard")


# --------------------------------------------------------------------------------------
# client-side callbacks (used with --everything-fidelity)
# --------------------------------------------------------------------------------------


class Callbacks:
    def __init__(self) -> None:
        self.sampling = 0
        self.elicitation = 0
        self.roots = 0

    async def on_sampling(self, _ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampling += 1
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLING_REPLY),
            model="switchboard-test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(self, _ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitation += 1
        schema = getattr(params, "requested_schema", None) or {}
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(by_alias=True, exclude_none=True)
        content = {name: sample_value(prop) for name, prop in schema.get("properties", {}).items()}
        return types.ElicitResult(action="accept", content=content)

    async def on_list_roots(self, _ctx: Any) -> types.ListRootsResult:
        self.roots += 1
        return types.ListRootsResult(roots=[types.Root(uri=FIDELITY_ROOT_URI, name="switchboard-fidelity")])


# --------------------------------------------------------------------------------------
# the probe
# --------------------------------------------------------------------------------------


async def list_all_tools(client: Client) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(100):  # bounded pagination
        page = await client.list_tools(cursor=cursor)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return names
    raise ProbeError("tools/list pagination did not end after 100 pages")


async def call_expecting(client: Client, name: str, args: dict[str, Any], expect: str | None, **kw: Any) -> str:
    result = await client.call_tool(name, args, **kw)
    joined = "\n".join(texts(result))
    if result.is_error:
        raise ProbeError(f"tool {name!r} returned isError: {joined[:500]}")
    if expect is not None and expect not in joined:
        raise ProbeError(f"tool {name!r}: no text content contains {expect!r}; got {joined[:500]!r}")
    return joined


async def everything_fidelity(client: Client, names: list[str], cb: Callbacks) -> dict[str, Any]:
    """Sampling, elicitation, roots and progress against (a gateway fronting) server-everything."""

    def need(suffix: str) -> str:
        found = find_tool(names, suffix)
        if found is None:
            raise ProbeError(
                f"no tool ending in {suffix!r} (server-everything registers it only when the client "
                f"declares the matching capability); tools: {names}"
            )
        return found

    out: dict[str, Any] = {}

    tool = need("trigger-sampling-request")
    await call_expecting(client, tool, {"prompt": "say hi", "maxTokens": 20}, SAMPLING_REPLY)
    if cb.sampling < 1:
        raise ProbeError("sampling callback was never invoked")
    out["sampling"] = tool

    tool = need("trigger-elicitation-request")
    await call_expecting(client, tool, {}, "accept")
    if cb.elicitation < 1:
        raise ProbeError("elicitation callback was never invoked")
    out["elicitation"] = tool

    tool = need("get-roots-list")
    await call_expecting(client, tool, {}, FIDELITY_ROOT_URI)
    out["roots"] = tool

    tool = need("trigger-long-running-operation")
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, _message: str | None) -> None:
        progress.append((value, total))

    await call_expecting(client, tool, {"duration": 1, "steps": 3}, "completed", progress_callback=on_progress)
    if not progress:
        raise ProbeError(f"{tool}: no progress notification received")
    out["progress"] = {"tool": tool, "notifications": len(progress)}
    return out


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    headers = parse_headers(opts.header)
    cb = Callbacks()
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        if opts.transport == "sse":
            transport = sse_client(opts.url, headers=headers, timeout=opts.timeout)
        else:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(opts.timeout, read=300.0))
            )
            transport = streamable_http_client(opts.url, http_client=http)

        extra: dict[str, Any] = {}
        if opts.everything_fidelity:
            # Declaring these capabilities is what makes server-everything register its
            # sampling / elicitation / roots tools.
            extra = dict(
                sampling_callback=cb.on_sampling,
                elicitation_callback=cb.on_elicitation,
                list_roots_callback=cb.on_list_roots,
            )
        client = await stack.enter_async_context(
            Client(transport, mode=opts.mode, read_timeout_seconds=opts.timeout, **extra)
        )

        names = await list_all_tools(client)
        summary: dict[str, Any] = {
            "ok": True,
            "client": "python-mcp-2.3.0",
            "mode": opts.mode,
            "transport": opts.transport,
            "protocolVersion": client.protocol_version,
            "server": client.server_info.name if client.server_info else None,
            "tools": len(names),
        }

        for wanted in opts.expect_tool:
            if find_tool(names, wanted) is None:
                raise ProbeError(f"expected tool {wanted!r} not listed; tools: {names}")
        for unwanted in opts.expect_absent:
            if unwanted in names:
                raise ProbeError(f"tool {unwanted!r} is listed but must not be; tools: {names}")

        if opts.call:
            name = find_tool(names, opts.call)
            if name is None:
                raise ProbeError(f"tool to call {opts.call!r} not listed; tools: {names}")
            try:
                args = json.loads(opts.args)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"py_client: --args is not JSON: {exc}") from None
            text = await call_expecting(client, name, args, opts.expect_text)
            summary["called"] = name
            summary["text"] = text[:200]

        if opts.everything_fidelity:
            summary["fidelity"] = await everything_fidelity(client, names, cb)

        summary["elapsedMs"] = round((time.monotonic() - started) * 1000)
        # Every check passed; what follows is the SDK's teardown (see `main`).
        opts.checked = summary
        return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="endpoint: .../mcp (streamable) or .../sse (sse)")
    parser.add_argument("--mode", default="auto", help="legacy | auto | 2026-07-28 (Client(mode=...))")
    parser.add_argument("--transport", choices=["streamable", "sse"], default="streamable")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--expect-tool", action="append", default=[], help="tool that must be listed, repeatable")
    parser.add_argument(
        "--expect-absent", action="append", default=[], help="exact tool name that must not be listed, repeatable"
    )
    parser.add_argument("--call", help="tool to call")
    parser.add_argument("--args", default="{}", help="JSON object of arguments for --call")
    parser.add_argument("--expect-text", help="substring a text content of the --call result must contain")
    parser.add_argument(
        "--everything-fidelity",
        action="store_true",
        help="also exercise server-everything's sampling, elicitation, roots and progress tools",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    opts = parser.parse_args()
    if not (opts.call or opts.expect_tool or opts.expect_absent or opts.everything_fidelity):
        parser.error("nothing to check: give --expect-tool, --expect-absent, --call and/or --everything-fidelity")

    opts.checked = None
    try:
        summary = anyio.run(_bounded, opts)
    except Exception as exc:  # noqa: BLE001 - report any transport/protocol failure clearly
        cause = root_cause(exc)  # task groups wrap failures (ours included) in exception groups
        if opts.checked is not None and isinstance(cause, (anyio.BrokenResourceError, anyio.ClosedResourceError)):
            # A message that arrives while the SDK closes its streams (server-everything sends
            # notifications on its own) escapes its reader task at teardown, after every check
            # passed: the SDK's shutdown race (python-sdk #1960, fixed for stdio only), not a
            # failure of the peer under test. Reported, not failed.
            summary = dict(opts.checked, teardown=type(cause).__name__)
            print(json.dumps(summary, sort_keys=True))
            return 0
        detail = str(cause) if isinstance(cause, ProbeError) else f"{type(cause).__name__}: {cause}"
        print(f"py_client: FAIL: {detail}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


async def _bounded(opts: argparse.Namespace) -> dict[str, Any]:
    """The whole probe under one deadline, so a hung peer fails the probe instead of the test."""
    budget = opts.timeout * 4
    try:
        with anyio.fail_after(budget):
            return await run(opts)
    except TimeoutError:
        raise ProbeError(f"probe did not finish within {budget:.0f}s") from None


if __name__ == "__main__":
    sys.exit(main())
