"""The state of the Kingdee K3Cloud sandbox: forms, bills, validation and bill queries.

Three forms are modelled: sales orders (``SAL_SaleOrder``, numbered ``FBillNo`` XSDD000001 ...,
with an entry table ``FSaleOrderEntry``), customers (``BD_Customer``, ``FNumber`` CUST0001 ...)
and materials (``BD_MATERIAL``, ``FNumber`` CH0001 ...). Base-data references are written as
``{"FNumber": "CUST0001"}`` and must name an existing record, as on the real server.

Validation failures are :class:`KdError` carrying the ``MsgCode`` and the ``Errors[]`` items
(``FieldName``, ``Message``, ``DIndex``) the server puts in ``Result.ResponseStatus``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

#: K3Cloud stores times in the server's local time; the sandbox's server is in China (UTC+8).
SERVER_TZ = timezone(timedelta(hours=8))

# MsgCode values of Result.ResponseStatus (Kingdee WebAPI documentation).
MSG_SESSION_LOST = 1
MSG_PARAMETER = 8
MSG_FIELD_MISSING = 9
MSG_NOT_FOUND = 10
MSG_VALIDATION = 11
MSG_NOT_ALLOWED = 12


class KdError(Exception):
    """A failed operation: a MsgCode and the ``Errors[]`` items of its ResponseStatus."""

    def __init__(self, msg_code: int, message: str, field_name: str | None = None, index: int = 0) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.errors = [{"FieldName": field_name, "Message": message, "DIndex": index}]


@dataclass(frozen=True)
class FormMeta:
    """What the sandbox knows of one form."""

    form_id: str
    number_field: str
    prefix: str
    digits: int
    required: dict[str, str]  # field key -> display name
    references: dict[str, str] = field(default_factory=dict)  # field key -> referenced form
    entry: str | None = None
    entry_required: dict[str, str] = field(default_factory=dict)
    entry_references: dict[str, str] = field(default_factory=dict)
    numeric: frozenset[str] = frozenset()


FORMS: dict[str, FormMeta] = {
    "SAL_SaleOrder": FormMeta(
        "SAL_SaleOrder", "FBillNo", "XSDD", 6,
        required={"FDate": "日期", "FSaleOrgId": "销售组织", "FCustId": "客户", "FSaleOrderEntry": "订单明细"},
        references={"FCustId": "BD_Customer"},
        entry="FSaleOrderEntry",
        entry_required={"FMaterialId": "物料编码", "FQty": "销售数量"},
        entry_references={"FMaterialId": "BD_MATERIAL"},
        numeric=frozenset({"FQty", "FPrice", "FTaxPrice"}),
    ),
    "BD_Customer": FormMeta("BD_Customer", "FNumber", "CUST", 4, required={"FName": "客户名称"}),
    "BD_MATERIAL": FormMeta("BD_MATERIAL", "FNumber", "CH", 4, required={"FName": "名称"}),
}

#: Fields every bill has, set by the server.
SYSTEM_FIELDS = ("FID", "FDocumentStatus", "FCreateDate", "FModifyDate")
_STATUS_NAMES = {"A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核", "Z": "暂存"}


def _missing(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {} or (isinstance(value, dict) and not value.get("FNumber"))


class BillStore:
    """Bills by form, with the operations of DynamicFormService."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.bills: dict[str, dict[int, dict[str, Any]]] = {form: {} for form in FORMS}
        self._next_id = 100001
        self._next_number = {form: 1 for form in FORMS}

    def now_text(self) -> str:
        """The server's local time as K3Cloud writes it (``2026-11-23T10:00:00.123``)."""
        return datetime.fromtimestamp(self.clock(), SERVER_TZ).replace(tzinfo=None).isoformat(timespec="milliseconds")

    # ------------------------------------------------------------------ lookup

    def meta(self, form_id: Any) -> FormMeta:
        """The form's metadata; KdError for an unknown form."""
        if not isinstance(form_id, str) or not form_id:
            raise KdError(5, "表单标识(FormId)不能为空")
        meta = FORMS.get(form_id)
        if meta is None:
            raise KdError(MSG_FIELD_MISSING, f"业务对象“{form_id}”不存在", "FormId")
        return meta

    def find(self, form_id: str, number: Any = None, bill_id: Any = None) -> dict[str, Any]:
        """A bill by number or internal id; KdError(MsgCode 10) when there is none."""
        meta = self.meta(form_id)
        bills = self.bills[form_id]
        if bill_id not in (None, "", 0, "0"):
            try:
                found = bills.get(int(bill_id))
            except (TypeError, ValueError):
                raise KdError(MSG_PARAMETER, f"内码“{bill_id}”不是有效的整数", "Id") from None
        elif number not in (None, ""):
            found = next((b for b in bills.values() if b[meta.number_field] == number), None)
        else:
            raise KdError(MSG_PARAMETER, "单据编码(Number)和内码(Id)不能同时为空", "Number")
        if found is None:
            raise KdError(MSG_NOT_FOUND, f"单据“{number or bill_id}”不存在或已被删除")
        return found

    def _check_reference(self, form_id: str, value: Any, field_key: str, label: str, index: int = 0) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("FNumber"), str):
            raise KdError(MSG_PARAMETER, f"字段“{label}”应为 {{\"FNumber\": \"编码\"}} 的形式", field_key, index)
        meta = FORMS[form_id]
        if not any(b[meta.number_field] == value["FNumber"] for b in self.bills[form_id].values()):
            raise KdError(MSG_VALIDATION, f"字段“{label}”的值“{value['FNumber']}”在系统中不存在", field_key, index)

    # ------------------------------------------------------------------ operations

    def save(self, form_id: str, model: Any, need_update_fields: list[str] | None = None) -> dict[str, Any]:
        """Create (no FID, or 0) or update (an existing FID) a bill; returns it."""
        meta = self.meta(form_id)
        if not isinstance(model, dict) or not model:
            raise KdError(MSG_PARAMETER, "Model 不能为空", "Model")
        fid = model.get("FID")
        existing = None
        if fid not in (None, "", 0, "0"):
            existing = self.find(form_id, bill_id=fid)
            if existing["FDocumentStatus"] in ("B", "C"):
                raise KdError(MSG_NOT_ALLOWED, f"单据“{existing[meta.number_field]}”已{_STATUS_NAMES[existing['FDocumentStatus']]}，不允许修改")
        if existing is not None and need_update_fields:
            merged = {**existing, **{k: v for k, v in model.items() if k in need_update_fields}}
        elif existing is not None:
            merged = {**existing, **model}
        else:
            merged = dict(model)
        self._validate(meta, merged)
        number = merged.get(meta.number_field)
        if number:
            clash = next((b for b in self.bills[form_id].values() if b[meta.number_field] == number and b is not existing), None)
            if clash is not None:
                raise KdError(MSG_VALIDATION, f"编码“{number}”已经被使用", meta.number_field)
        now = self.now_text()
        if existing is None:
            fid_value = self._next_id
            self._next_id += 1
            if not number:
                number = f"{meta.prefix}{self._next_number[form_id]:0{meta.digits}d}"
                self._next_number[form_id] += 1
            merged.update(FID=fid_value, FCreateDate=now, FDocumentStatus="A")
        merged[meta.number_field] = number
        merged["FModifyDate"] = now
        if meta.entry:
            for seq, row in enumerate(merged[meta.entry], start=1):
                row.setdefault("FEntryID", merged["FID"] * 100 + seq)
        self.bills[form_id][merged["FID"]] = merged
        return merged

    def _validate(self, meta: FormMeta, bill: dict[str, Any]) -> None:
        for key, label in meta.required.items():
            if _missing(bill.get(key)):
                raise KdError(MSG_VALIDATION, f"字段“{label}”是必填项", key)
        for key, form in meta.references.items():
            self._check_reference(form, bill[key], key, meta.required.get(key, key))
        if "FDate" in bill and not _is_date(bill["FDate"]):
            raise KdError(MSG_PARAMETER, f"字段“日期”的值“{bill['FDate']}”不是有效的日期", "FDate")
        if not meta.entry:
            return
        rows = bill[meta.entry]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise KdError(MSG_PARAMETER, "订单明细应为对象数组", meta.entry)
        for index, row in enumerate(rows):
            for key, label in meta.entry_required.items():
                if _missing(row.get(key)):
                    raise KdError(MSG_VALIDATION, f"第{index + 1}行字段“{label}”是必填项", key, index)
            for key, form in meta.entry_references.items():
                self._check_reference(form, row[key], key, meta.entry_required.get(key, key), index)
            for key in meta.numeric & row.keys():
                if isinstance(row[key], bool) or not isinstance(row[key], (int, float)):
                    raise KdError(MSG_PARAMETER, f"第{index + 1}行字段“{key}”应为数值", key, index)
            if row["FQty"] <= 0:
                raise KdError(MSG_VALIDATION, f"第{index + 1}行“销售数量”必须大于0", "FQty", index)

    def set_status(self, form_id: str, op: str, numbers: list[str], ids: list[Any]) -> list[dict[str, Any]]:
        """Submit (A/D → B), Audit (B → C) or Delete (A/D/Z only) the named bills, all or none."""
        meta = self.meta(form_id)
        if not numbers and not ids:
            raise KdError(MSG_PARAMETER, "Numbers 和 Ids 不能同时为空", "Numbers")
        targets = [self.find(form_id, number=n) for n in numbers] + [self.find(form_id, bill_id=i) for i in ids]
        allowed = {"Submit": ("A", "D", "Z"), "Audit": ("B",), "Delete": ("A", "D", "Z")}[op]
        for index, bill in enumerate(targets):
            if bill["FDocumentStatus"] not in allowed:
                state = _STATUS_NAMES[bill["FDocumentStatus"]]
                raise KdError(MSG_NOT_ALLOWED, f"单据“{bill[meta.number_field]}”的状态为“{state}”，不能{_OP_NAMES[op]}", None, index)
        now = self.now_text()
        for bill in targets:
            if op == "Delete":
                self.bills[form_id].pop(bill["FID"], None)
            else:
                bill["FDocumentStatus"] = "B" if op == "Submit" else "C"
                bill["FModifyDate"] = now
        return [{"Id": b["FID"], "Number": b[meta.number_field], "DIndex": i} for i, b in enumerate(targets)]

    def query(self, form_id: str, field_keys: list[str], filter_string: str, order_string: str,
              start_row: int, limit: int, top_row_count: int) -> list[list[Any]]:
        """ExecuteBillQuery: rows (lists in FieldKeys order), one per entry row when an entry field is asked."""
        meta = self.meta(form_id)
        known = {*meta.required, *meta.references, meta.number_field, *SYSTEM_FIELDS, "FName", "FNumber", "FBillNo"}
        entry_keys = {*meta.entry_required, *meta.entry_references, *meta.numeric, "FEntryID"} if meta.entry else set()
        for key in field_keys:
            if key.split(".")[0] not in known | entry_keys:
                raise KdError(MSG_FIELD_MISSING, f"字段“{key}”不存在", key)
        conditions = parse_filter(filter_string, known | entry_keys)
        records: list[dict[str, Any]] = []
        per_entry = any(k.split(".")[0] in entry_keys for k in field_keys) or any(c[0].split(".")[0] in entry_keys for c in conditions)
        for bill in self.bills[form_id].values():
            if per_entry:
                records.extend({**bill, **row} for row in bill[meta.entry])
            else:
                records.append(bill)
        records = [r for r in records if all(_compare(_lookup(r, key), op, value) for key, op, value in conditions)]
        for key, descending in reversed(parse_order(order_string, known | entry_keys)):
            records.sort(key=lambda r: _sort_key(_lookup(r, key)), reverse=descending)
        if top_row_count > 0:
            records = records[:top_row_count]
        page = records[start_row:start_row + limit] if limit > 0 else records[start_row:]
        return [[_lookup(r, key) for key in field_keys] for r in page]


_OP_NAMES = {"Submit": "提交", "Audit": "审核", "Delete": "删除"}


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace(" ", "T"))
        return True
    except ValueError:
        return False


def _lookup(record: dict[str, Any], key: str) -> Any:
    head, _, rest = key.partition(".")
    value = record.get(head)
    if rest:
        return value.get(rest) if isinstance(value, dict) else None
    if isinstance(value, dict) and "FNumber" in value:
        return value["FNumber"]
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|<>|!=|=|>|<|LIKE)\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def parse_filter(text: str, known: set[str]) -> list[tuple[str, str, Any]]:
    """``A = 'x' AND (B >= 3)`` as (field, operator, value) triples; KdError on other SQL (OR, functions ...)."""
    if not text or not text.strip():
        return []
    if re.search(r"\bOR\b", re.sub(r"'(?:[^']|'')*'", "''", text), re.IGNORECASE) is None:
        # a conjunction: its parentheses change nothing
        text = "".join(part if part.startswith("'") else part.replace("(", " ").replace(")", " ")
                       for part in re.split(r"('(?:[^']|'')*')", text))
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.match(part)
        if match is None:
            raise KdError(4, f"过滤条件“{part.strip()}”有语法错误或不受支持", "FilterString")
        key, op, raw = match.groups()
        if key.split(".")[0] not in known:
            raise KdError(MSG_FIELD_MISSING, f"过滤条件中的字段“{key}”不存在", key)
        value: Any = raw[1:-1].replace("''", "'") if raw.startswith("'") else float(raw)
        conditions.append((key, op.upper(), value))
    return conditions


def parse_order(text: str, known: set[str]) -> list[tuple[str, bool]]:
    """``FDate DESC, FBillNo`` as (field, descending) pairs."""
    if not text or not text.strip():
        return []
    order = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise KdError(4, f"排序条件“{part.strip()}”有语法错误", "OrderString")
        if words[0].split(".")[0] not in known:
            raise KdError(MSG_FIELD_MISSING, f"排序字段“{words[0]}”不存在", words[0])
        order.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
    return order


def _normalise(value: Any) -> Any:
    """Dates compare as text in one shape (``2026-01-01 10:00:00`` and ISO ``T`` forms alike)."""
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}[T ]", value):
        return value.replace("T", " ")
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "LIKE":
        pattern = "^" + re.escape(str(expected)).replace("%", ".*").replace("_", ".") + "$"
        return actual is not None and re.match(pattern, str(actual)) is not None
    if actual is None:
        return False
    if isinstance(expected, float):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    else:
        actual, expected = _normalise(str(actual)), _normalise(expected)
    return {"=": actual == expected, "<>": actual != expected, "!=": actual != expected, ">": actual > expected,
            ">=": actual >= expected, "<": actual < expected, "<=": actual <= expected}[op]
