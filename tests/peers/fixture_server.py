#!/usr/bin/env python3
"""Dual-era MCP fixture upstream for Switchboard's interop and conformance tests.

Built on the Python `mcp` 2.3.0 package (`mcp.server.MCPServer`), so it serves both
protocol eras on one endpoint: legacy (initialize handshake + Mcp-Session-Id, up to
2025-11-25) and modern (2026-07-28, stateless `server/discover`).

    python fixture_server.py --port 8931      # Streamable HTTP on http://127.0.0.1:8931/mcp
    python fixture_server.py --stdio         # stdio

Besides simple tools for the interop probes (`echo`, `add`, `whoami` which returns the
request headers it received) it registers the fixture tools, resources and prompts that the
official conformance suite (@modelcontextprotocol/conformance 0.2.0-alpha.12) expects on the
server under test: `tools-*`, `resources-*`, `prompts-*`, `completion-complete`,
`logging-set-level`, `json-schema-2020-12`, `elicitation-sep1034/1330-*`, `server-sse-polling`,
`server-stateless` (including its SEP-2575 diagnostic tools) and `input-required-result-*`
(names and payloads taken from the scenario descriptions; see `conformance list` and the
suite's source). Run directly, it passes every scenario of `--requirements 2025-11-25` and
every scored scenario of `--requirements 2026-07-28` (the unscored `tasks-*` extension and
the pending `http-custom-header-server-validation` are not implemented). Put it behind the
gateway to run those scenarios through Switchboard.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
import warnings
from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve, Sample, UserMessage
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    AudioContent,
    ClientCapabilities,
    Completion,
    CreateMessageRequest,
    CreateMessageResult,
    ElicitRequest,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    ListRootsRequest,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

log = logging.getLogger("fixture_server")

# The fixture logs through the deprecated logging capability on purpose (legacy
# tools-call-with-logging, the 2026-07-28 logLevel gate behind test_logging_tool); keep the SDK's
# per-call-site deprecation notice out of stderr.
warnings.filterwarnings("ignore", message="The logging capability is deprecated", category=MCPDeprecationWarning)

# 1x1 PNG and a tiny (empty) WAV, base64.
TEST_IMAGE_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
TEST_AUDIO_BASE64 = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="

server = MCPServer(
    name="switchboard-fixture",
    version="1.0.0",
    instructions="Fixture upstream for Switchboard tests (echo, add, conformance fixtures).",
)

# ---------------------------------------------------------------------------------------
# Simple tools used by the interop clients (tests/interop/*).
# ---------------------------------------------------------------------------------------


@server.tool(description="Echo the given text back unchanged.")
def echo(text: str) -> str:
    return text


@server.tool(description="Add two numbers.")
def add(a: int | float, b: int | float) -> int | float:
    return a + b


@server.tool(description="Return the request headers the fixture received (for header-forwarding tests).")
def whoami(ctx: Context) -> str:
    headers = ctx.headers or {}
    return json.dumps({k.lower(): v for k, v in dict(headers).items()}, sort_keys=True)


# ---------------------------------------------------------------------------------------
# Conformance fixtures: tools-* scenarios.
# ---------------------------------------------------------------------------------------


@server.tool(description="Tests simple text content response")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(description="Tests image content response")
def test_image_content() -> list[ImageContent]:
    return [ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")]


@server.tool(description="Tests audio content response")
def test_audio_content() -> list[AudioContent]:
    return [AudioContent(type="audio", data=TEST_AUDIO_BASE64, mime_type="audio/wav")]


@server.tool(description="Tests embedded resource content response")
def test_embedded_resource() -> list[EmbeddedResource]:
    return [
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://embedded-resource",
                mime_type="text/plain",
                text="This is an embedded resource content.",
            ),
        )
    ]


@server.tool(description="Tests response with multiple content types (text, image, resource)")
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text='{"test":"data","value":123}',
            ),
        ),
    ]


@server.tool(description="Tests tool that emits log messages during execution")
async def test_tool_with_logging(ctx: Context) -> str:
    # Context.info is deprecated at 2026-07-28 (logging is opt-in per request there), but the
    # scenario only runs on legacy protocol versions.
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@server.tool(description="Tests SSE polling: closes the POST SSE stream mid-call (SEP-1699)")
async def test_reconnection(ctx: Context) -> str:
    # server-sse-polling (legacy era). close_sse_stream only closes the stream when the
    # transport has an event store to resume from; this fixture runs without one (its streams
    # stay plain for the gateway), so it is a no-op and the result arrives on the original
    # stream. The scenario then reports its resumability SHOULDs (priming event, retry field)
    # as warnings, not failures.
    await ctx.close_sse_stream()
    await asyncio.sleep(0.05)
    return "Reconnection test completed"


@server.tool(description="Tests error response handling")
def test_error_handling() -> str:
    # MCPServer turns an exception into a CallToolResult with isError=true.
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool(description="Tests tool that reports progress notifications")
async def test_tool_with_progress(ctx: Context) -> str:
    # report_progress is a no-op when the request carried no progressToken.
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        if step != 100:
            await asyncio.sleep(0.05)
    return "Progress tool completed"


# Sampling / elicitation go through `Resolve` markers so they work in both eras: a
# standalone server->client request on legacy sessions, an InputRequiredResult round trip
# on 2026-07-28.
def _sample(prompt: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
        max_tokens=100,
    )


@server.tool(description="Tests server-initiated sampling (LLM completion request)")
async def test_sampling(prompt: str, sampled: Annotated[CreateMessageResult, Resolve(_sample)]) -> str:
    content = sampled.content
    text = content.text if isinstance(content, TextContent) else "No response"
    return f"LLM response: {text}"


class UserResponse(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


def _elicit(message: str) -> Elicit[UserResponse]:
    return Elicit(message, UserResponse)


@server.tool(description="Tests server-initiated elicitation (user input request)")
async def test_elicitation(
    message: str, answer: Annotated[ElicitationResult[UserResponse], Resolve(_elicit)]
) -> str:
    data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"User response: action={answer.action}, content={data}"


class Sep1034Defaults(BaseModel):
    """elicitation-sep1034-defaults: a default on every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


def _elicit_sep1034() -> Elicit[Sep1034Defaults]:
    return Elicit("Please provide user information", Sep1034Defaults)


@server.tool(description="Tests elicitation with default values for all primitive types (SEP-1034)")
async def test_elicitation_sep1034_defaults(
    answer: Annotated[ElicitationResult[Sep1034Defaults], Resolve(_elicit_sep1034)],
) -> str:
    data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation completed: action={answer.action}, content={data}"


class Sep1330Enums(BaseModel):
    """elicitation-sep1330-enums: the five enum shapes."""

    untitledSingle: str = Field(  # noqa: N815 - wire name
        description="Untitled single-select", json_schema_extra={"enum": ["option1", "option2", "option3"]}
    )
    titledSingle: str = Field(  # noqa: N815
        description="Titled single-select",
        json_schema_extra={
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ]
        },
    )
    legacyEnum: str = Field(  # noqa: N815
        description="Legacy titled enum",
        json_schema_extra={
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
    )
    untitledMulti: list[str] = Field(  # noqa: N815
        description="Untitled multi-select",
        json_schema_extra={"items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    )
    titledMulti: list[str] = Field(  # noqa: N815
        description="Titled multi-select",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            }
        },
    )


def _elicit_sep1330() -> Elicit[Sep1330Enums]:
    return Elicit("Please select values using different enum schema types", Sep1330Enums)


@server.tool(description="Tests elicitation with enum schema variations (SEP-1330)")
async def test_elicitation_sep1330_enums(
    answer: Annotated[ElicitationResult[Sep1330Enums], Resolve(_elicit_sep1330)],
) -> str:
    data = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation completed: action={answer.action}, content={data}"


# server-stateless (2026-07-28) diagnostics, called by name from the scenario:
# - test_missing_capability needs the client's `sampling` capability (the framework answers
#   -32021 when the request did not declare it);
# - test_streaming_elicitation asks for input while its response stream is open (the answer
#   must come back as an input_required result, never as an independent request on the stream);
# - test_logging_tool logs (nothing may reach the client unless the request opted in with
#   `_meta` io.modelcontextprotocol/logLevel);
# - test_trigger_tool_change / test_trigger_prompt_change fire list-changed events onto
#   subscriptions/listen streams.
# Unknown tools come back as an isError result, so without these fixtures the stream checks
# would pass without exercising anything (and fail as "not testable" behind a gateway that maps
# them to a JSON-RPC error).
def _needs_sampling() -> Sample:
    return _sample("capability probe")


@server.tool(description="Requires the client's sampling capability (stateless capability check)")
async def test_missing_capability(sampled: Annotated[CreateMessageResult, Resolve(_needs_sampling)]) -> str:
    return "sampling capability was declared"


class Confirmation(BaseModel):
    confirmed: bool = Field(description="Continue the diagnostic?")


def _elicit_confirmation() -> Elicit[Confirmation]:
    return Elicit("Continue the streaming diagnostic?", Confirmation)


@server.tool(description="Elicits mid-call without an independent request on the response stream (SEP-2575)")
async def test_streaming_elicitation(
    answer: Annotated[ElicitationResult[Confirmation], Resolve(_elicit_confirmation)],
) -> str:
    # The Resolve marker picks the era's mechanism: on 2026-07-28 the first call returns an
    # InputRequiredResult (the only thing the request's stream carries) and the answer arrives
    # in the retry's inputResponses; legacy sessions get a standalone elicitation/create request.
    return f"Streaming elicitation completed: action={answer.action}"


@server.tool(description="Emits log messages; on 2026-07-28 only when the request set _meta logLevel")
async def test_logging_tool(ctx: Context) -> str:
    # Logs unconditionally and relies on the SDK's per-request gate: on 2026-07-28 the session
    # drops every notifications/message unless the request's `_meta` carried
    # io.modelcontextprotocol/logLevel (and then sends that level and above); legacy sessions
    # get all of them (logging/setLevel-era semantics).
    for level in ("debug", "info", "warning"):
        await ctx.log(level, f"test_logging_tool: {level} message", logger_name="fixture")
    return "Logging tool completed"


@server.tool(description="Emits a tools list-changed notification")
async def test_trigger_tool_change(ctx: Context) -> str:
    await ctx.notify_tools_changed()
    return "tools list changed"


@server.tool(description="Emits a prompts list-changed notification")
async def test_trigger_prompt_change(ctx: Context) -> str:
    await ctx.notify_prompts_changed()
    return "prompts list changed"


# ---------------------------------------------------------------------------------------
# Conformance fixtures: input-required-result-* scenarios (SEP-2322 multi-round trips,
# 2026-07-28 only). The suite looks for fixed inputRequests keys, so these tools build
# InputRequiredResult by hand instead of using Resolve markers. MCPServer seals
# `request_state` on the way out and rejects a tampered one on the way in (ephemeral
# per-process keys), so the tools see their own plain-text state.
# ---------------------------------------------------------------------------------------


def _elicit_request(message: str, field: str, kind: str = "string") -> ElicitRequest:
    return ElicitRequest.model_validate(
        {
            "method": "elicitation/create",
            "params": {
                "message": message,
                "requestedSchema": {"type": "object", "properties": {field: {"type": kind}}, "required": [field]},
            },
        }
    )


def _sampling_request(text: str, max_tokens: int) -> CreateMessageRequest:
    return CreateMessageRequest.model_validate(
        {
            "method": "sampling/createMessage",
            "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
                "maxTokens": max_tokens,
            },
        }
    )


def _roots_request() -> ListRootsRequest:
    return ListRootsRequest.model_validate({"method": "roots/list", "params": {}})


def _responses(ctx: Context) -> dict[str, Any]:
    return dict(ctx.input_responses or {})


def _declared_capabilities(ctx: Context) -> ClientCapabilities | None:
    """The capabilities the client declared for this request.

    A 2026-07-28 request declares them in its own `_meta` (io.modelcontextprotocol/
    clientCapabilities); that wins even on a handshake session, where a proxy in front of the
    fixture may forward its client's per-request declaration. Without the key, fall back to
    what the connection declared (the initialize handshake, or the stateless envelope).
    """
    declared = (ctx.request_context.meta or {}).get(CLIENT_CAPABILITIES_META_KEY)
    if isinstance(declared, Mapping):
        return ClientCapabilities.model_validate(declared)
    return ctx.client_capabilities


def _elicited(response: Any, field: str) -> Any:
    content = getattr(response, "content", None) or {}
    return content.get(field)


@server.tool(description="SEP-2322: one elicitation input request (key user_name)")
async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    if "user_name" not in got:  # first round, or a retry that lacks the key: ask (again)
        return InputRequiredResult(input_requests={"user_name": _elicit_request("What is your name?", "name")})
    return f"Hello, {_elicited(got['user_name'], 'name')}!"


@server.tool(description="SEP-2322: one sampling input request (key capital_question)")
async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    if "capital_question" not in got:
        return InputRequiredResult(
            input_requests={"capital_question": _sampling_request("What is the capital of France?", 100)}
        )
    content = getattr(got["capital_question"], "content", None)
    return f"Sampling response: {getattr(content, 'text', content)}"


@server.tool(description="SEP-2322: one roots/list input request (key client_roots)")
async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    if "client_roots" not in got:
        return InputRequiredResult(input_requests={"client_roots": _roots_request()})
    roots = getattr(got["client_roots"], "roots", []) or []
    return "Client roots: " + ", ".join(str(r.uri) for r in roots)


@server.tool(description="SEP-2322: input request plus requestState that round 2 must echo")
async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    if "confirm" in got and ctx.request_state == "confirm-pending":
        return "state-ok: confirmation received"
    return InputRequiredResult(
        input_requests={"confirm": _elicit_request("Please confirm", "ok", "boolean")},
        request_state="confirm-pending",
    )


@server.tool(description="SEP-2322: elicitation + sampling + roots in one round")
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    wanted = {
        "user_name": lambda: _elicit_request("What is your name?", "name"),
        "greeting": lambda: _sampling_request("Generate a greeting", 50),
        "client_roots": _roots_request,
    }
    missing = {key: make() for key, make in wanted.items() if key not in got}
    if missing or ctx.request_state != "multi-pending":
        return InputRequiredResult(
            input_requests=missing or {key: make() for key, make in wanted.items()}, request_state="multi-pending"
        )
    return f"All inputs received for {_elicited(got['user_name'], 'name')}"


@server.tool(description="SEP-2322: two rounds of elicitation before completing")
async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    state = ctx.request_state or ""
    if state.startswith("round-2:") and "step2" in got:
        return f"Done: name={state.removeprefix('round-2:')}, color={_elicited(got['step2'], 'color')}"
    if state == "round-1" and "step1" in got:
        return InputRequiredResult(
            input_requests={"step2": _elicit_request("Step 2: What is your favorite color?", "color")},
            request_state=f"round-2:{_elicited(got['step1'], 'name')}",
        )
    return InputRequiredResult(
        input_requests={"step1": _elicit_request("Step 1: What is your name?", "name")}, request_state="round-1"
    )


@server.tool(description="SEP-2322: integrity-protected requestState (tampering is rejected)")
async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
    # A tampered state never reaches here: the SDK's request-state boundary rejects it.
    if ctx.request_state == "integrity-protected" and "user_name" in _responses(ctx):
        return "state verified"
    return InputRequiredResult(
        input_requests={"user_name": _elicit_request("What is your name?", "name")},
        request_state="integrity-protected",
    )


@server.tool(description="SEP-2322: only asks for inputs the client declared capabilities for")
async def test_input_required_result_capabilities(ctx: Context) -> str | InputRequiredResult:
    got = _responses(ctx)
    caps = _declared_capabilities(ctx)
    wanted: dict[str, Any] = {}
    if caps is not None and caps.elicitation is not None and "user_name" not in got:
        wanted["user_name"] = _elicit_request("What is your name?", "name")
    if caps is not None and caps.sampling is not None and "greeting" not in got:
        wanted["greeting"] = _sampling_request("Generate a greeting", 50)
    if caps is not None and caps.roots is not None and "client_roots" not in got:
        wanted["client_roots"] = _roots_request()
    if wanted:
        return InputRequiredResult(input_requests=wanted)
    return f"Completed with inputs: {sorted(got)}"


@server.prompt(description="SEP-2322: prompts/get that needs an elicitation first")
async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    got = _responses(ctx)
    if "user_context" not in got:
        return InputRequiredResult(
            input_requests={"user_context": _elicit_request("What context should the prompt use?", "context")}
        )
    return [UserMessage(TextContent(type="text", text=f"Context: {_elicited(got['user_context'], 'context')}"))]


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@server.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(
    name: str | None = None,
    address: dict[str, Any] | None = None,
    contactMethod: str | None = None,  # noqa: N803 - wire name
    phone: str | None = None,
    email: str | None = None,
) -> str:
    return json.dumps({"name": name, "contactMethod": contactMethod})


# The advertised inputSchema must be the literal 2020-12 document; the generated one is
# only used for argument parsing.
server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = JSON_SCHEMA_2020_12  # noqa: SLF001

# ---------------------------------------------------------------------------------------
# Conformance fixtures: resources-* scenarios.
# ---------------------------------------------------------------------------------------

WATCHED_URI = "test://watched-resource"
subscriptions: set[str] = set()


@server.resource("test://static-text", mime_type="text/plain", description="A static text resource for testing")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", mime_type="image/png", description="A static binary resource (image)")
def static_binary() -> bytes:
    return base64.b64decode(TEST_IMAGE_BASE64)


@server.resource(
    "test://template/{id}/data", mime_type="application/json", description="A resource template with substitution"
)
def template_data(id: str) -> str:  # noqa: A002 - template variable name
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource(WATCHED_URI, mime_type="text/plain", description="A resource that can be subscribed to")
def watched() -> str:
    return "Watched resource content"


# resources/subscribe + unsubscribe are legacy-era methods with no MCPServer decorator:
# register them on the low-level server (this also advertises resources.subscribe).
async def _subscribe(_ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
    subscriptions.add(str(params.uri))
    return EmptyResult()


async def _unsubscribe(_ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    subscriptions.discard(str(params.uri))
    return EmptyResult()


async def _set_level(_ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    log.info("logging/setLevel %s", params.level)
    return EmptyResult()


_low = server._lowlevel_server  # noqa: SLF001
_low.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
_low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
_low.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)

# ---------------------------------------------------------------------------------------
# Conformance fixtures: prompts-* scenarios (+ completion-complete).
# ---------------------------------------------------------------------------------------


@server.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage(TextContent(type="text", text="This is a simple prompt for testing."))]


@server.prompt(description="A prompt with required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    return [UserMessage(TextContent(type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]


@server.prompt(description="A prompt that includes an embedded resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:  # noqa: N803 - wire name
    return [
        UserMessage(
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                ),
            )
        ),
        UserMessage(TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@server.prompt(description="A prompt that includes image content")
def test_prompt_with_image() -> list[UserMessage]:
    return [
        UserMessage(ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")),
        UserMessage(TextContent(type="text", text="Please analyze the image above.")),
    ]


@server.completion()
async def _complete(ref: Any, argument: Any, context: Any) -> Completion:
    # Minimal completion support: suggest the typed prefix plus a fixed suffix.
    return Completion(values=[f"{argument.value}-1", f"{argument.value}-2"], total=2, has_more=False)


# ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--port", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT at /mcp")
    mode.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; keep it loopback)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()

    # Logs go to stderr: stdout is the protocol channel in --stdio mode.
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    server.settings.log_level = args.log_level.upper()  # uvicorn's level
    logging.getLogger("mcp").setLevel(args.log_level.upper())  # MCPServer configured INFO at import

    if args.stdio:
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
