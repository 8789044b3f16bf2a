"""The state of the fake WeCom: corps, their apps, members, departments and customers.

Seeded with the same data on every start so examples and tests can rely on it (see
``docs/connectors/wecom.md`` for the table of sandbox credentials).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

SANDBOX_CORP = "ww-sandbox-corp"
SANDBOX_AGENT = 1000002
SANDBOX_SECRET = "sandbox-app-secret"
#: an app of the same corp without the customer-contact (externalcontact) permission
LIMITED_AGENT = 1000003
LIMITED_SECRET = "sandbox-limited-secret"
SECOND_CORP = "ww-second-corp"
SECOND_SECRET = "second-corp-secret"
ROBOT_KEY = "sandbox-robot-key"
#: callback settings of the sandbox corp (the token and EncodingAESKey set on its app page)
CALLBACK_TOKEN = "sandbox-callback-token"
CALLBACK_AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
#: a welcome code issued when the sandbox starts (valid 10 minutes) and a contact way, for examples
SANDBOX_WELCOME_CODE = "sandbox-welcome-code"
SANDBOX_CONTACT_WAY = "sandbox-contact-way"

SANDBOX_CONNECTION = {"corp_id": SANDBOX_CORP, "app_secret": SANDBOX_SECRET, "agent_id": SANDBOX_AGENT}


class FakeError(Exception):
    """A WeCom error answer (HTTP 200, non-zero errcode)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg


class Call:
    """One authenticated API call as a handler sees it."""

    def __init__(self, corp: Corp, app: App, query: Any, body: dict[str, Any], raw: bytes = b"",
                 content_type: str = "") -> None:
        self.corp, self.app, self.query, self.body = corp, app, query, body
        self.raw, self.content_type = raw, content_type

    def field(self, name: str, kind: type | tuple[type, ...] = str, *, code: int = 40058, required: bool = True) -> Any:
        """A body field of the given type; a missing or mistyped one is an error."""
        value = self.body.get(name)
        if value is None or value == "":
            if required:
                raise FakeError(code, f"missing required parameter: {name}")
            return None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise FakeError(40058, f"invalid Request Parameter: {name} has the wrong type")
        return value

    def user(self, userid: Any) -> dict[str, Any]:
        """A member by userid (60111 when unknown)."""
        if not userid:
            raise FakeError(41009, "missing userid")
        user = self.corp.users.get(str(userid))
        if user is None:
            raise FakeError(60111, f"userid not found: {userid}")
        return user


def multipart_file(content_type: str, body: bytes) -> tuple[bytes | None, str | None]:
    """The ``media`` part of a multipart/form-data body: (data, filename)."""
    if not content_type.startswith("multipart/form-data"):
        return None, None
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "media":
            return part.get_payload(decode=True), part.get_filename()
    return None, None


@dataclass
class App:
    """A self-built app (agent) of a corp."""

    agentid: int
    secret: str
    scopes: frozenset[str] = frozenset({"message", "directory", "externalcontact", "media"})


@dataclass
class Corp:
    """One enterprise: apps, members, departments, tags, customers and what was sent."""

    corp_id: str
    apps: dict[int, App]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    departments: dict[int, dict[str, Any]] = field(default_factory=dict)
    member_tags: dict[int, dict[str, Any]] = field(default_factory=dict)
    tag_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)  # external_userid -> external_contact
    follows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (userid, external_userid) -> follow info
    contact_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome_codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> {userid, external_userid, expires_at, used}
    messages: list[dict[str, Any]] = field(default_factory=list)
    welcome_messages: list[dict[str, Any]] = field(default_factory=list)
    msg_templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app_by_secret(self, secret: str) -> App | None:
        """The app whose secret this is."""
        return next((app for app in self.apps.values() if app.secret == secret), None)

    def tag(self, tag_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(group, tag) of a corp tag id."""
        for group in self.tag_groups.values():
            for tag in group["tag"]:
                if tag["id"] == tag_id:
                    return group, tag
        return None

    def department_ids(self, root: int, children: bool) -> set[int]:
        """`root` and, with `children`, every department below it."""
        found = {root}
        while children:
            more = {d for d, dept in self.departments.items() if dept["parentid"] in found} - found
            if not more:
                break
            found |= more
        return found


def member(userid: str, name: str, mobile: str, department: list[int], position: str = "") -> dict[str, Any]:
    """A member record as ``user/get`` returns it."""
    return {"userid": userid, "name": name, "mobile": mobile, "department": department, "position": position,
            "gender": "1", "email": f"{userid}@example.com", "status": 1, "main_department": department[0],
            "open_userid": f"wo{userid}"}


def sandbox_corp(created: int) -> Corp:
    """The main sandbox corp: three members in two departments, two tag groups, three customers."""
    corp = Corp(SANDBOX_CORP, {
        SANDBOX_AGENT: App(SANDBOX_AGENT, SANDBOX_SECRET),
        LIMITED_AGENT: App(LIMITED_AGENT, LIMITED_SECRET, frozenset({"message", "directory", "media"})),
    })
    corp.departments = {1: {"id": 1, "name": "Flowlink 科技", "parentid": 0, "order": 1},
                        2: {"id": 2, "name": "销售部", "parentid": 1, "order": 1},
                        3: {"id": 3, "name": "客服部", "parentid": 1, "order": 2}}
    for user in (member("zhangsan", "张三", "13800000001", [2], "销售经理"), member("lisi", "李四", "13800000002", [2], "销售"),
                 member("wangwu", "王五", "13800000003", [3], "客服")):
        corp.users[user["userid"]] = user
    corp.member_tags = {1: {"tagid": 1, "tagname": "Managers", "userlist": ["zhangsan"]}}
    corp.tag_groups = {
        "etGroupSource": {"group_id": "etGroupSource", "group_name": "来源", "create_time": created, "order": 1,
                          "tag": [{"id": "etTagAd", "name": "广告", "create_time": created, "order": 1},
                                  {"id": "etTagExpo", "name": "展会", "create_time": created, "order": 2}]},
        "etGroupLevel": {"group_id": "etGroupLevel", "group_name": "客户等级", "create_time": created, "order": 2,
                         "tag": [{"id": "etTagVip", "name": "VIP", "create_time": created, "order": 1}]},
    }
    for index, (ext, name, userid, state) in enumerate((("wmCustomer001", "李雷", "zhangsan", "expo"),
                                                         ("wmCustomer002", "韩梅梅", "zhangsan", "ad"),
                                                         ("wmCustomer003", "Jim", "lisi", ""))):
        add_customer(corp, ext, name, userid, state, created + index)
    corp.contact_ways[SANDBOX_CONTACT_WAY] = {
        "config_id": SANDBOX_CONTACT_WAY, "type": 1, "scene": 2, "style": 1, "remark": "Expo booth", "skip_verify": True,
        "state": "expo", "user": ["zhangsan"], "party": [], "is_temp": False, "expires_in": 7 * 86400,
        "qr_code": f"https://wework.qpic.cn/wwpic/fake/{SANDBOX_CONTACT_WAY}/0"}
    return corp


def second_corp() -> Corp:
    """Another enterprise, to run several corps side by side."""
    corp = Corp(SECOND_CORP, {SANDBOX_AGENT: App(SANDBOX_AGENT, SECOND_SECRET)})
    corp.departments = {1: {"id": 1, "name": "Second Corp", "parentid": 0, "order": 1}}
    corp.users["zhaoliu"] = member("zhaoliu", "赵六", "13900000001", [1])
    return corp


def add_customer(corp: Corp, external_userid: str, name: str, userid: str, state: str, created: int,
                 add_way: int = 1) -> dict[str, Any]:
    """A WeChat user adds member `userid` (the customer is created on first add)."""
    contact = corp.customers.setdefault(external_userid, {
        "external_userid": external_userid, "name": name, "type": 1, "gender": 1, "avatar": "",
        "unionid": f"o-union-{external_userid}", "corp_name": "", "corp_full_name": "", "position": ""})
    follow = {"userid": userid, "remark": "", "description": "", "createtime": created, "tag_id": [],
              "remark_corp_name": "", "remark_mobiles": [], "oper_userid": external_userid, "add_way": add_way,
              "state": state}
    corp.follows[(userid, external_userid)] = follow
    return contact
