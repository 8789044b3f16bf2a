"""Connections the action examples use against the sandbox (``flowlink connector test dingtalk``).

The contract kit adds ``base_url`` (the fake's address); the fake serves both API hosts, so
the new-API calls follow ``base_url`` too. The credentials are the sandbox's seeded ones.
"""
from __future__ import annotations

from connectors.dingtalk import sandbox as fake

SANDBOX_CONNECTION = {
    "app_key": fake.APP_KEY,
    "app_secret": fake.APP_SECRET,
    "agent_id": fake.AGENT_ID,
    "robot_access_token": fake.ROBOT_SIGN_TOKEN,
    "robot_secret": fake.ROBOT_SECRET,
}

#: A robot secured by keywords (订单 / order) instead of a signature.
SANDBOX_KEYWORD_CONNECTION = {"robot_access_token": fake.ROBOT_KEYWORD_TOKEN}
