"""A contract-faithful fake of Alibaba Cloud SMS (dysmsapi, API version 2017-05-25).

What it enforces, as the real service does:

- the RPC envelope: ``Action``, ``Version=2017-05-25``, ``AccessKeyId``, ``SignatureMethod=HMAC-SHA1``,
  ``SignatureVersion=1.0``, ``SignatureNonce``, ``Timestamp``, ``Signature``, read from the query
  string and a form body alike;
- the signature (recomputed over the received parameters; ``SignatureDoesNotMatch`` quoting the
  server's string to sign), the access key (``InvalidAccessKeyId.NotFound``), the timestamp
  (``InvalidTimeStamp.Format``, ``InvalidTimeStamp.Expired`` beyond 15 minutes) and the nonce
  (``SignatureNonceUsed`` when seen in the last 15 minutes);
- ``SendSms``, ``SendBatchSms`` and ``QuerySendDetails`` with their required parameters, the
  approved signature names and templates (``isv.SMS_SIGNATURE_ILLEGAL``, ``isv.SMS_TEMPLATE_ILLEGAL``),
  template variables (``isv.TEMPLATE_MISSING_PARAMETERS``, string values only:
  ``isv.INVALID_JSON_PARAM``), mainland mobile numbers (``isv.MOBILE_NUMBER_ILLEGAL``), at most
  1000 numbers per SendSms and 100 per SendBatchSms (``isv.MOBILE_COUNT_OVER_LIMIT``), and the
  default per-number flow control for one signature (1 per minute, 5 per hour, 10 per day:
  ``isv.BUSINESS_LIMIT_CONTROL``);
- answers: HTTP 200 ``{"Code": "OK", "Message": "OK", "BizId", "RequestId"}`` on success, HTTP 200
  with an ``isv.*`` code for business errors, HTTP 4xx ``{"Code", "Message", "RequestId",
  "HostId", "Recommend"}`` for gateway errors.

Test hooks (methods of :class:`FakeAliyunSms`): :meth:`advance` (moves the clock),
:meth:`deliver` (delivery receipts: status 3 delivered or 2 failed), :meth:`throttle_next`
(answer the next send with ``isv.BUSINESS_LIMIT_CONTROL``), ``sent`` (every message accepted).
``flowlink sandbox sms`` serves it; the credentials are :data:`ACCESS_KEY` / :data:`SECRET`.
"""
from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sms.signing import TIMESTAMP_FORMAT, signature, string_to_sign

ACCESS_KEY = "LTAI5tSandboxKey"
SECRET = "sandbox-access-key-secret"
SIGN_NAME = "阿里云短信测试"
#: Approved templates: code -> content with ${var} placeholders.
TEMPLATES = {
    "SMS_154950909": "您正在使用阿里云短信测试服务，体验验证码是：${code}，如非本人操作，请忽略本短信！",
    "SMS_465391234": "${name}，生日快乐！送您一张优惠券：${coupon}，有效期至${expire}。",
}
API_VERSION = "2017-05-25"
TOLERANCE = timedelta(minutes=15)
FLOW_CONTROL = ((timedelta(minutes=1), 1, "分钟"), (timedelta(hours=1), 5, "小时"), (timedelta(days=1), 10, "天"))
_MOBILE = re.compile(r"^(?:\+?86|0086)?(1[3-9]\d{9})$")
_VAR = re.compile(r"\$\{(\w+)\}")
_COMMON = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp")


class ApiError(Exception):
    """An answer with an error code: HTTP `status` (200 for business errors)."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class SentMessage:
    """One message the fake accepted."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    content: str
    sent_at: datetime
    out_id: str = ""
    status: int = 1  # 1 waiting for the receipt, 2 failed, 3 delivered
    err_code: str = ""
    received_at: datetime | None = None


@dataclass
class FakeAliyunSms:
    """The fake's state: credentials, signatures, templates, messages, nonces and the clock."""

    access_keys: dict[str, str] = field(default_factory=lambda: {ACCESS_KEY: SECRET})
    sign_names: set[str] = field(default_factory=lambda: {SIGN_NAME})
    templates: dict[str, str] = field(default_factory=lambda: dict(TEMPLATES))
    offset: timedelta = timedelta(0)  # the fake's clock is real time plus this
    sent: list[SentMessage] = field(default_factory=list)
    nonces: dict[str, datetime] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _throttle: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(900619746936498))

    @property
    def app(self) -> Starlette:
        """The ASGI app (RPC style: every action on ``/``, GET or POST)."""
        return Starlette(routes=[Route("/", self._handle, methods=["GET", "POST"])])

    @property
    def now(self) -> datetime:
        """The fake's clock: real UTC time moved by :meth:`advance`."""
        return datetime.now(timezone.utc) + self.offset

    # ------------------------------------------------------------------ test hooks
    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (flow-control windows, timestamp checks)."""
        self.offset += timedelta(seconds=seconds)

    def deliver(self, biz_id: str | None = None, *, ok: bool = True, err_code: str | None = None) -> int:
        """Settle waiting messages (of one BizId, or all): delivered (3) or failed (2); returns how many."""
        settled = 0
        for message in self.sent:
            if message.status == 1 and (biz_id is None or message.biz_id == biz_id):
                message.status = 3 if ok else 2
                message.err_code = "DELIVERED" if ok else (err_code or "MOBILE_NOT_ON_SERVICE")
                message.received_at = self.now
                settled += 1
        return settled

    def throttle_next(self, count: int = 1) -> None:
        """Answer the next `count` sends with ``isv.BUSINESS_LIMIT_CONTROL``."""
        self._throttle += count

    # ------------------------------------------------------------------ the API
    async def _handle(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4()).upper()
        params: dict[str, str] = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            self._authenticate(request.method, params)
            action = params.get("Action", "")
            handler = {"SendSms": self._send_sms, "SendBatchSms": self._send_batch_sms,
                       "QuerySendDetails": self._query_send_details}.get(action)
            if handler is None:
                raise ApiError("InvalidAction.NotFound", f"Specified api '{action}' is not found", 404)
            if params.get("Version") != API_VERSION:
                raise ApiError("InvalidVersion", f"Specified parameter Version '{params.get('Version')}' is not valid.", 400)
            self.calls[action] = self.calls.get(action, 0) + 1
            body = handler(params)
        except ApiError as exc:
            body = {"Code": exc.code, "Message": exc.message, "RequestId": request_id}
            if exc.status != 200:
                body.update(HostId="dysmsapi.aliyuncs.com", Recommend=f"https://api.aliyun.com/troubleshoot?q={exc.code}")
            return JSONResponse(body, status_code=exc.status)
        return JSONResponse({"RequestId": request_id, **body})

    def _authenticate(self, method: str, params: dict[str, str]) -> None:
        missing = [name for name in _COMMON if not params.get(name)]
        if missing:
            raise ApiError("MissingParameter" if "Signature" not in missing else "IncompleteSignature",
                           f"The input parameter \"{missing[0]}\" that is mandatory for processing this request is not supplied.", 400)
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
        secret = self.access_keys.get(params["AccessKeyId"])
        if secret is None:
            raise ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        try:
            stamp = datetime.strptime(params["Timestamp"], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise ApiError("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", 400) from None
        if abs(stamp - self.now) > TOLERANCE:
            raise ApiError("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        if signature(secret, method, params) != params["Signature"]:
            raise ApiError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation. "
                           f"server string to sign is:{string_to_sign(method, params)}", 400)
        self.nonces = {n: at for n, at in self.nonces.items() if self.now - at <= TOLERANCE}
        if params["SignatureNonce"] in self.nonces:
            raise ApiError("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self.nonces[params["SignatureNonce"]] = self.now

    # ------------------------------------------------------------------ actions
    def _send_sms(self, params: dict[str, str]) -> dict[str, Any]:
        numbers = [n.strip() for n in _required(params, "PhoneNumbers").split(",") if n.strip()]
        sign_name = _required(params, "SignName")
        template = _required(params, "TemplateCode")
        if len(numbers) > 1000:
            raise ApiError("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        variables = _json_object(params.get("TemplateParam"), "TemplateParam")
        content = self._render(sign_name, template, variables)
        return self._accept([(n, sign_name, content) for n in numbers], template, params.get("OutId", ""))

    def _send_batch_sms(self, params: dict[str, str]) -> dict[str, Any]:
        numbers = _json_list(_required(params, "PhoneNumberJson"), "PhoneNumberJson")
        sign_names = _json_list(_required(params, "SignNameJson"), "SignNameJson")
        template = _required(params, "TemplateCode")
        variables = _json_list(params["TemplateParamJson"], "TemplateParamJson") if params.get("TemplateParamJson") else [{}] * len(numbers)
        if len(numbers) > 100:
            raise ApiError("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        if not (len(numbers) == len(sign_names) == len(variables)):
            raise ApiError("isv.INVALID_PARAMETERS", "PhoneNumberJson, SignNameJson and TemplateParamJson differ in length")
        batch = []
        for number, sign_name, values in zip(numbers, sign_names, variables):
            if not isinstance(values, dict):
                raise ApiError("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
            batch.append((str(number), str(sign_name), self._render(str(sign_name), template, values)))
        return self._accept(batch, template, params.get("OutId", ""))

    def _render(self, sign_name: str, template: str, values: dict[str, Any]) -> str:
        if sign_name not in self.sign_names:
            raise ApiError("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        text = self.templates.get(template)
        if text is None:
            raise ApiError("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        if any(not isinstance(v, str) for v in values.values()):
            raise ApiError("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        missing = [name for name in _VAR.findall(text) if name not in values]
        if missing:
            raise ApiError("isv.TEMPLATE_MISSING_PARAMETERS", f"模版缺少变量: {', '.join(missing)}")
        return f"【{sign_name}】" + _VAR.sub(lambda m: values[m.group(1)], text)

    def _accept(self, batch: list[tuple[str, str, str]], template: str, out_id: str) -> dict[str, Any]:
        phones = []
        for number, sign_name, _ in batch:
            match = _MOBILE.match(number)
            if match is None:
                raise ApiError("isv.MOBILE_NUMBER_ILLEGAL", f"非法手机号: {number}")
            phones.append(match.group(1))
        if self._throttle:
            self._throttle -= 1
            raise ApiError("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        for phone, (_, sign_name, _) in zip(phones, batch):
            self._flow_control(phone, sign_name)
        biz_id = f"{next(self._ids)}^0"
        for phone, (_, sign_name, content) in zip(phones, batch):
            self.sent.append(SentMessage(biz_id, phone, sign_name, template, content, self.now, out_id))
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    def _flow_control(self, phone: str, sign_name: str) -> None:
        for window, permits, unit in FLOW_CONTROL:
            recent = [m for m in self.sent if m.phone == phone and m.sign_name == sign_name and self.now - m.sent_at < window]
            if len(recent) >= permits:
                raise ApiError("isv.BUSINESS_LIMIT_CONTROL", f"触发{unit}级流控Permits:{permits}")

    def _query_send_details(self, params: dict[str, str]) -> dict[str, Any]:
        phone = _required(params, "PhoneNumber")
        send_date = _required(params, "SendDate")
        try:
            day = datetime.strptime(send_date, "%Y%m%d").date()
        except ValueError:
            raise ApiError("isv.INVALID_PARAMETERS", f"SendDate {send_date} is not yyyyMMdd") from None
        if (self.now + timedelta(hours=8)).date() - day > timedelta(days=30):
            raise ApiError("isv.INVALID_PARAMETERS", "只支持查询最近30天的记录")
        try:
            size, page = int(_required(params, "PageSize")), int(_required(params, "CurrentPage"))
        except ValueError:
            raise ApiError("isv.INVALID_PARAMETERS", "PageSize and CurrentPage are integers") from None
        if not 1 <= size <= 50 or page < 1:
            raise ApiError("isv.INVALID_PARAMETERS", "PageSize is 1-50 and CurrentPage at least 1")
        match = _MOBILE.match(phone)
        if match is None:
            raise ApiError("isv.MOBILE_NUMBER_ILLEGAL", f"非法手机号: {phone}")
        biz_id = params.get("BizId")
        found = [m for m in self.sent if m.phone == match.group(1) and _china_date(m.sent_at) == day
                 and (not biz_id or m.biz_id == biz_id)]
        rows = [_detail(m) for m in found[(page - 1) * size: page * size]]
        return {"Code": "OK", "Message": "OK", "TotalCount": str(len(found)), "SmsSendDetailDTOs": {"SmsSendDetailDTO": rows}}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(f"Missing{name}", f"{name} is mandatory for this action.", 400)
    return value


def _json_object(text: str | None, name: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError("isv.INVALID_JSON_PARAM", f"{name}: JSON参数不合法") from None
    if not isinstance(value, dict):
        raise ApiError("isv.INVALID_JSON_PARAM", f"{name}: JSON参数不合法")
    return value


def _json_list(text: str, name: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError("isv.INVALID_JSON_PARAM", f"{name}: JSON参数不合法") from None
    if not isinstance(value, list) or not value:
        raise ApiError("isv.INVALID_JSON_PARAM", f"{name}: JSON参数不合法")
    return value


def _china_date(moment: datetime) -> Any:
    return (moment + timedelta(hours=8)).date()


def _china_time(moment: datetime | None) -> str | None:
    return None if moment is None else (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def _detail(message: SentMessage) -> dict[str, Any]:
    row: dict[str, Any] = {"PhoneNum": message.phone, "SendStatus": message.status, "ErrCode": message.err_code,
                           "TemplateCode": message.template_code, "Content": message.content,
                           "SendDate": _china_time(message.sent_at), "OutId": message.out_id}
    if message.received_at is not None:
        row["ReceiveDate"] = _china_time(message.received_at)
    return row


def app() -> Starlette:
    """A fresh fake (the connector's ``sandbox`` factory)."""
    return FakeAliyunSms().app
