"""Yonyou YonBIP (用友) open-platform connector: sales orders, customers, materials."""
from connectors.yonyou import actions as _actions  # noqa: F401 - registers the actions
from connectors.yonyou.connector import connector

connector.actions["custom_api_call"].examples.append({
    "title": "Customer detail by code", "connection": _actions.SANDBOX,
    "input": {"method": "POST", "path": "/yonbip/digitalModel/merchant/detail", "json": {"code": "C0001"}},
    "expect": {"status": 200, "body": {"code": "200", "data": {"code": "C0001"}}},
})

__all__ = ["connector"]
