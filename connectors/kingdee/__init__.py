"""Kingdee K3Cloud (金蝶云星空) WebAPI connector: bills, queries and a changed-bills poll trigger."""
from connectors.kingdee import actions as _actions  # noqa: F401 - registers the actions
from connectors.kingdee.connector import connector
from connectors.kingdee.trigger import bills_changed
from connectors.sdk import add_trigger

add_trigger(connector, bills_changed)

connector.actions["custom_api_call"].examples.append({
    "title": "ExecuteBillQuery by hand", "connection": _actions.SANDBOX,
    "input": {"method": "POST", "path": "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc",
              "json": {"parameters": ['{"FormId": "BD_MATERIAL", "FieldKeys": "FNumber", "OrderString": "FNumber"}']}},
    "expect": {"status": 200, "body": [["CH0001"], ["CH0002"]]},
})

__all__ = ["connector"]
