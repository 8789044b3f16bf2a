"""Connector manifests: every installed connector's validates against
schemas/connector.schema.json, UI hints reach it, and a broken one is reported with pointers."""
from __future__ import annotations

import copy
import json
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from connectors.sdk import ConnectorRegistry, Connector
from connectors.sdk.action import ui
from connectors.sdk.manifest import manifest_issues, trigger_manifest, validate_manifest
from engine.validation import load_flow
from schemas import load_schema

INSTALLED = ConnectorRegistry.discover()


def test_the_schema_is_valid_2020_12() -> None:
    schema = load_schema("connector")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_builtins_and_the_example_are_installed() -> None:
    assert {"core", "http", "demo"} <= set(INSTALLED.connectors)


@pytest.mark.parametrize("name", sorted(INSTALLED.connectors))
def test_every_installed_manifest_validates(name: str) -> None:
    connector = INSTALLED.connectors[name]
    manifest = connector.manifest()
    # JSON-able as is, and valid by the schema alone and with the semantic checks
    assert json.loads(json.dumps(manifest)) == manifest
    jsonschema.Draft202012Validator(load_schema("connector")).validate(manifest)
    assert validate_manifest(manifest) == [], [str(i) for i in validate_manifest(manifest)]
    assert set(manifest["actions"]) == set(connector.actions)
    for action in manifest["actions"].values():
        assert action["input_schema"]["type"] == "object"


def test_builtin_manifest_content() -> None:
    http = INSTALLED.connectors["http"].manifest()
    assert http["connection"] == {"kinds": ["bearer", "basic", "api_key"]}
    request = http["actions"]["request"]
    assert request["default_retry"][0]["errors"] == ["RateLimited", "Transient"]
    assert "url" in request["input_schema"]["required"] and request["output_schema"] is None
    core = INSTALLED.connectors["core"].manifest()
    assert "connection" not in core and core["triggers"] == {}
    assert core["actions"]["log"]["input_schema"]["properties"]["level"]["enum"] == ["debug", "info", "warning", "error"]


class Credentials(BaseModel):
    token: str = Field(json_schema_extra=ui(secret=True))
    region: Literal["cn", "intl"] = "cn"


class SendInput(BaseModel):
    channel: str = Field(title="Channel", json_schema_extra=ui(options={"action": "channels", "value": "id", "label": "name"}))
    text: str = Field(description="Message body.", json_schema_extra=ui(multiline=True, placeholder="Hello", title_zh="内容"))
    thread: str | None = Field(default=None, json_schema_extra=ui(depends_on=["channel"]))


class SendOutput(BaseModel):
    message_id: str


class NewMessage:
    """A trigger described by attributes (the trigger classes of the SDK may bring their own manifest())."""

    kind = "webhook"
    title = {"en": "New message", "zh": "新消息"}
    output_schema = SendOutput


def _chat() -> Connector:
    chat = Connector(
        name="chat", version="2.1.0-beta.1", title={"en": "Chat", "zh": "聊天"}, description="test connector",
        icon="https://example.com/chat.svg", categories=("im",), connection_kinds=("bearer",), connection_schema=Credentials,
        triggers={"new_message": NewMessage(), "digest": {"kind": "schedule", "description": "every morning"}},
    )

    @chat.action("send", input=SendInput, output_schema=SendOutput, title={"en": "Send", "zh": "发送"},
                 default_retry=({"errors": ["chat.45009"], "max_attempts": 2},))
    def send(ctx: Any, inp: SendInput) -> dict[str, Any]:
        """Send a message."""
        return {"message_id": "m1"}

    @chat.action("channels")
    def channels(ctx: Any, inp: Any) -> list[dict[str, str]]:
        return [{"id": "c1", "name": "general"}]

    return chat


def test_manifest_carries_ui_hints_connection_and_triggers() -> None:
    chat = _chat()
    manifest = chat.manifest()
    assert manifest_issues(chat) == []
    props = manifest["actions"]["send"]["input_schema"]["properties"]
    assert props["channel"]["x-options"] == {"action": "channels", "value": "id", "label": "name"}
    assert props["text"]["x-multiline"] is True and props["text"]["x-placeholder"] == "Hello" and props["text"]["x-title-zh"] == "内容"
    assert props["thread"]["x-depends-on"] == ["channel"]
    assert manifest["actions"]["send"]["output_schema"]["properties"] == {"message_id": {"title": "Message Id", "type": "string"}}
    assert manifest["actions"]["send"]["description"] == "Send a message."
    assert manifest["actions"]["channels"]["input_schema"] == {"type": "object"}
    assert manifest["connection"]["kinds"] == ["bearer"]
    assert manifest["connection"]["schema"]["properties"]["token"]["x-secret"] is True
    assert manifest["triggers"]["new_message"] == {
        "kind": "webhook", "title": {"en": "New message", "zh": "新消息"},
        "output_schema": SendOutput.model_json_schema()}
    assert manifest["triggers"]["digest"] == {"kind": "schedule", "description": "every morning"}
    assert trigger_manifest(type("PollTrigger", (), {})()) == {"kind": "poll"}


def test_flow_validation_sees_declared_triggers() -> None:
    registry = ConnectorRegistry([_chat()])
    flow = {"id": "t", "name": "t", "trigger": {"type": "chat.new_message"}, "steps": [{"id": "a", "type": "set", "value": 1}]}
    assert load_flow(flow, registry).ok
    flow["trigger"]["type"] = "chat.nope"
    assert [(i.pointer, i.message) for i in load_flow(flow, registry).issues] == [
        ("/trigger/type", "connector 'chat' has no trigger 'nope' (triggers: digest, new_message)")]


def _issues(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.pointer, i.message) for i in validate_manifest(manifest)]


def test_broken_manifest_schema_issues_have_pointers() -> None:
    manifest = copy.deepcopy(INSTALLED.connectors["demo"].manifest())
    manifest["name"] = "Demo CRM"
    manifest["version"] = "1.2"
    manifest["colour"] = "blue"
    manifest["title"] = {"zh": "演示"}
    manifest["actions"]["greet"]["input_schema"]["properties"]["name"]["x-secret"] = "yes"
    manifest["actions"]["greet"]["default_retry"] = [{"errors": [], "max_attempts": 0}]
    manifest["actions"]["greet"]["colour"] = "red"
    manifest["actions"]["Bad-Name"] = manifest["actions"]["greet"]
    manifest["triggers"] = {"new_contact": {"kind": "callback"}}
    del manifest["actions"]["lookup_contact"]["output_schema"]
    issues = _issues(manifest)
    for expected in [
        ("/colour", "unknown property 'colour'"),
        ("/name", "'Demo CRM' does not match '^[a-z][a-z0-9_]{0,63}$'"),
        ("/title", "missing required property 'en'"),
        ("/actions/greet/colour", "unknown property 'colour'"),
        ("/actions/greet/input_schema/properties/name/x-secret", "'yes' is not of type 'boolean'"),
        ("/actions/greet/default_retry/0/max_attempts", "0 is less than the minimum of 1"),
        ("/actions/greet/default_retry/0/errors", "[] should be non-empty"),
        ("/actions/lookup_contact", "missing required property 'output_schema'"),
        ("/triggers/new_contact/kind", "'callback' is not one of ['webhook', 'poll', 'schedule']"),
    ]:
        assert expected in issues, issues
    assert any(pointer == "/version" for pointer, _ in issues)
    assert any(pointer == "/actions" and "Bad-Name" in message for pointer, message in issues)
    assert all(i.stage == "schema" for i in validate_manifest(manifest))


def test_broken_manifest_semantic_issues_have_pointers() -> None:
    manifest = _chat().manifest()
    send = manifest["actions"]["send"]["input_schema"]
    send["properties"]["channel"]["x-options"]["action"] = "rooms"
    send["properties"]["thread"]["x-depends-on"] = ["channel", "team"]
    send["properties"]["text"]["type"] = "strng"
    manifest["connection"]["schema"]["properties"]["token"]["minLength"] = -1
    issues = validate_manifest(manifest)
    assert [(i.pointer, i.message, i.stage) for i in issues] == [
        ("/actions/send/input_schema/properties/text/type", issues[0].message, "semantics"),
        ("/actions/send/input_schema/properties/channel/x-options/action",
         "x-options names unknown action 'rooms' (actions: channels, send)", "semantics"),
        ("/actions/send/input_schema/properties/thread/x-depends-on/1",
         "x-depends-on names 'team', which is not a sibling field", "semantics"),
        ("/connection/schema/properties/token/minLength", issues[3].message, "semantics"),
    ]
    assert issues[0].message.startswith("not a valid JSON Schema: 'strng' is not valid")
    assert issues[3].message.startswith("not a valid JSON Schema: -1 is less than the minimum of 0")


def test_not_an_object_at_all() -> None:
    assert _issues([]) == [("", "[] is not of type 'object'")]


def test_sdk_trigger_classes_fit_the_manifest() -> None:
    triggers = pytest.importorskip("connectors.sdk.triggers")
    chat = _chat()
    chat.triggers = {}
    triggers.add_trigger(chat, triggers.WebhookTrigger(name="incoming", title={"en": "Incoming message", "zh": "收到消息"},
                                                       sample={"text": "hi"}, output_schema=SendOutput.model_json_schema()))
    triggers.add_trigger(chat, triggers.PollTrigger(name="new_member", title={"en": "New member"}, sample={"id": "u1"},
                                                    fetch=lambda ctx, state: []))
    triggers.add_trigger(chat, triggers.ScheduleTrigger(cron="0 9 * * 1-5", tz="Asia/Shanghai", name="workday_morning"))
    manifest = chat.manifest()
    assert manifest_issues(chat) == [], [str(i) for i in manifest_issues(chat)]
    assert {name: t["kind"] for name, t in manifest["triggers"].items()} == {
        "incoming": "webhook", "new_member": "poll", "workday_morning": "schedule"}
    assert json.loads(json.dumps(manifest)) == manifest
