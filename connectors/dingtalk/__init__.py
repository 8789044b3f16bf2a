"""The `dingtalk` (钉钉) connector.

Flows use its actions as ``dingtalk.<action>`` and its triggers as ``dingtalk.event`` (HTTP
event callbacks) and ``dingtalk.approval_finished`` (polling). See docs/connectors/dingtalk.md.
"""
from __future__ import annotations

from connectors.dingtalk import approvals, callbacks, contacts, custom_call, messages, robot  # noqa: F401  (register)
from connectors.dingtalk.base import __version__, connector

__all__ = ["__version__", "connector"]
