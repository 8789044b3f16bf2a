"""WeCom (企业微信): app messages, members, customer contact (SCRM) and encrypted callbacks.

The manifest is in :mod:`connectors.wecom.base`; each sibling module adds a group of
actions; the group robot is a separate connector, :mod:`connectors.wecom.robot`
(``wecom_robot``), because its credential is a webhook key, not an app.
"""
from connectors.wecom import callback, customers, directory, messages, outreach, tags  # noqa: F401  (register actions)
from connectors.wecom.base import connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION

connector.actions["custom_api_call"].examples.append(
    {"title": "Departments through the raw API", "connection": SANDBOX_CONNECTION,
     "input": {"method": "GET", "path": "/cgi-bin/department/list", "query": {"id": "3"}},
     "expect": {"status": 200, "body": {"errcode": 0, "department": [{"id": 3}]}}})

__all__ = ["connector"]
