"""WeCom's callback XML: ``<xml><Field>value</Field>...</xml>`` to and from plain dicts.

Field names are kept as WeCom spells them (``ToUserName``, ``ChangeType``...). Leaf values
are strings except the few that are numbers on every platform SDK (``CreateTime``,
``AgentID``); ``MsgId`` stays a string because it does not fit a JavaScript number.
Nested elements become dicts, and repeated elements lists (``<Item>`` in ``ExtAttr``).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from engine.errors import InvalidInput

#: Leaf fields read as integers.
INTEGER_FIELDS = frozenset({"CreateTime", "AgentID"})
#: Bodies larger than this are not parsed (WeCom's callbacks are a few KB).
MAX_XML_BYTES = 1 << 20


def _element_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        text = element.text or ""
        if element.tag in INTEGER_FIELDS and text.strip().lstrip("-").isdigit():
            return int(text.strip())
        return text
    result: dict[str, Any] = {}
    for child in children:
        value = _element_value(child)
        if child.tag in result:
            existing = result[child.tag]
            result[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[child.tag] = value
    return result


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """The fields of a ``<xml>`` document; InvalidInput when it is not one.

    Documents with a DTD are refused: WeCom never sends one, and entities are the classic
    XML bomb.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_XML_BYTES:
        raise InvalidInput(f"XML body of {len(raw)} bytes is larger than {MAX_XML_BYTES}")
    upper = raw.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise InvalidInput("XML with a DTD or entities is not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise InvalidInput(f"body is not well-formed XML: {exc}") from None
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside one CDATA section: split it across two
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _render(name: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"<{name}>" + "".join(_render(k, v) for k, v in value.items()) + f"</{name}>"
    if isinstance(value, list):
        return "".join(_render(name, item) for item in value)
    if isinstance(value, bool):
        return f"<{name}>{int(value)}</{name}>"
    if isinstance(value, (int, float)):
        return f"<{name}>{value}</{name}>"
    return f"<{name}>{_cdata(str(value))}</{name}>"


def build_xml(fields: dict[str, Any]) -> str:
    """A ``<xml>`` document as WeCom writes it: strings in CDATA, numbers bare."""
    return "<xml>" + "".join(_render(escape(str(k)), v) for k, v in fields.items()) + "</xml>"
