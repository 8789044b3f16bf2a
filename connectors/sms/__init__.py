"""Alibaba Cloud SMS connector (`sms`): SendSms, SendBatchSms, QuerySendDetails.

The manifest is in :mod:`connectors.sms.connector`; each action module registers its actions.
"""
from connectors.sms import query, send  # noqa: F401  (registers the actions)
from connectors.sms.check import check_connection
from connectors.sms.connector import connector

connector.test = check_connection  # type: ignore[attr-defined]  # POST /api/connections/{name}/test

connector.actions["custom_api_call"].examples.append({
    "title": "Raw QuerySendDetails call", "connection": send.SANDBOX_CONNECTION,
    "input": {"method": "POST", "path": "/", "query": {
        "Action": "QuerySendDetails", "Version": "2017-05-25", "Format": "JSON", "PhoneNumber": "13800000000",
        "SendDate": "{{ format_date(now('UTC'), '%Y%m%d', 'Asia/Shanghai') }}", "PageSize": "10", "CurrentPage": "1"}},
    "expect": {"status": 200, "body": {"Code": "OK", "TotalCount": "0"}},
})

__all__ = ["connector"]
