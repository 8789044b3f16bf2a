"""The data-tables store (engine/store/datatables.py) on SQLite and PostgreSQL: definitions,
validation naming the column, writes, SQL filters/sort/paging, counters, rotations, changes."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from engine.errors import InvalidInput, NotFound
from engine.store import audit
from engine.store.datatables import Conflict, DataTables, load_definitions
from engine.store.db import make_engine, migrate

FLOWS_TABLES = Path(__file__).resolve().parent.parent / "flows" / "tables"

CUSTOMER_COLUMNS = {
    "external_userid": {"type": "string", "minLength": 1},
    "name": {"type": "string"},
    "city": {"type": "string"},
    "spend": {"type": "number", "minimum": 0},
    "orders": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "vip": {"type": "boolean"},
    "birthday": {"type": "string", "format": "date"},
    "profile": {"type": "object"},
}

PEOPLE = [
    {"external_userid": "wm1", "name": "Li Lei", "city": "Shanghai", "spend": 1200.5, "orders": 3, "tags": ["vip", "new"], "vip": True},
    {"external_userid": "wm2", "name": "Han Meimei", "city": "Beijing", "spend": 300, "orders": 1, "tags": ["new"], "vip": False},
    {"external_userid": "wm3", "name": "Wang Fang", "city": "Shanghai", "spend": 50, "tags": []},
    {"external_userid": "wm4", "name": "Zhao Lei", "city": "Shenzhen", "spend": 5000, "orders": 12, "tags": ["vip"], "vip": True,
     "profile": {"level": 2}},
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One migrated database per dialect for the whole module (creating one per test is slow on PostgreSQL)."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('tables') / 'tables.db'}", None
    else:
        admin_url = request.getfixturevalue("postgres_admin_url")
        name = f"flowlink_t_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url, drop = admin_url.rsplit("/", 1)[0] + f"/{name}", (admin, name)
    engine = make_engine(url)
    migrate(engine)
    people = DataTables(engine)  # first, so its rows have _id 1 to 4
    people.create_table("people", CUSTOMER_COLUMNS, key="external_userid", required=["name"])
    for person in PEOPLE:
        people.insert("people", person)
    yield engine
    engine.dispose()
    if drop is not None:
        with drop[0].connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)'))
        drop[0].dispose()


@pytest.fixture()
def tables(db: sa.Engine) -> Iterator[DataTables]:
    """The store; the tables a test creates are dropped after it."""
    store = DataTables(db)
    before = {t["name"] for t in store.list_tables()}
    yield store
    for table in store.list_tables():
        if table["name"] not in before:
            store.drop_table(table["name"])


@pytest.fixture()
def shared(db: sa.Engine) -> DataTables:
    """The read-only `people` table (PEOPLE) for the many filter cases."""
    return DataTables(db)


@pytest.fixture()
def customers(tables: DataTables) -> DataTables:
    tables.create_table("customers", CUSTOMER_COLUMNS, key="external_userid", title={"en": "Customers", "zh": "客户"},
                        required=["name"], actor="li.na")
    for person in PEOPLE:
        tables.insert("customers", person)
    return tables


def rid(store: DataTables, key: str) -> int:
    """The _id of a customer."""
    return store.get("customers", key_value=key)["_id"]


def ids(page: dict) -> list[str]:
    return [row["external_userid"] for row in page["rows"]]


# ---------------------------------------------------------------------------- definitions


def test_create_get_list_update_and_drop_a_table(tables: DataTables) -> None:
    created = tables.create_table("leads", {"mobile": {"type": "string"}}, key="mobile", title="Leads", actor="li.na")
    assert created["title"] == {"en": "Leads"} and created["key"] == "mobile"
    assert tables.get_table("leads")["rows"] == 0
    tables.insert("leads", {"mobile": "138"})
    updated = tables.update_table("leads", columns={"score": {"type": "integer"}}, title={"en": "Leads", "zh": "线索"}, actor="li.na")
    assert list(updated["columns"]) == ["mobile", "score"] and updated["title"]["zh"] == "线索"
    assert tables.insert("leads", {"mobile": "139", "score": 5})["score"] == 5
    assert [t["rows"] for t in tables.list_tables() if t["name"] == "leads"] == [2]
    with pytest.raises(InvalidInput, match="column 'score' exists with another schema"):
        tables.update_table("leads", columns={"score": {"type": "string"}})
    tables.drop_table("leads", actor="li.na")
    with pytest.raises(NotFound, match="no data table 'leads'"):
        tables.get_table("leads")
    actions = [e["action"] for e in audit.entries(tables.engine, target_type="table", target_id="leads")]
    assert actions == ["table.drop", "table.update", "table.create"]


BAD_DEFINITIONS = [
    ({}, None, "columns must be a non-empty object"),
    ({"_secret": {"type": "string"}}, None, "column name '_secret'"),
    ({"a": {"type": "date"}}, None, "column 'a' needs a JSON Schema with one \"type\""),
    ({"a": {"type": ["string", "number"]}}, None, "column 'a' needs a JSON Schema with one"),
    ({"a": {"type": "string", "minLength": -1}}, None, "column 'a': invalid JSON Schema"),
    ({"a": {"type": "string"}}, "b", "'b' is not one of its columns"),
    ({"a": {"type": "array"}}, "a", "the key column 'a' must be a string or an integer"),
]


def test_invalid_definitions_are_refused(tables: DataTables) -> None:
    for columns, key, message in BAD_DEFINITIONS:
        with pytest.raises(InvalidInput, match=message):
            tables.create_table("bad", columns, key=key)
    assert "bad" not in {t["name"] for t in tables.list_tables()}


def test_duplicate_table_and_bad_name(tables: DataTables) -> None:
    tables.create_table("t1", {"a": {"type": "string"}})
    with pytest.raises(Conflict, match="table 't1' exists"):
        tables.create_table("t1", {"a": {"type": "string"}})
    with pytest.raises(InvalidInput, match="table name 'Bad-Name'"):
        tables.create_table("Bad-Name", {"a": {"type": "string"}})


def test_shipped_definitions_load_once(tables: DataTables, tmp_path: Path) -> None:
    assert load_definitions(tables, FLOWS_TABLES) >= 2
    assert load_definitions(tables, FLOWS_TABLES) == 0
    customers = tables.get_table("customers")
    assert customers["key"] == "external_userid"
    assert {"name", "mobile", "source", "state", "tags", "owner", "spend", "last_order_at", "birthday"} <= set(customers["columns"])
    reps = tables.get_table("sales_reps")
    assert reps["key"] == "userid" and {"dingtalk_userid", "wecom_userid", "active"} <= set(reps["columns"])
    (tmp_path / "broken.json").write_text(json.dumps({"name": "broken", "columns": {"x": {"type": "nope"}}}))
    (tmp_path / "ok.json").write_text(json.dumps({"name": "ok", "title": {"en": "OK"}, "columns": {"x": {"type": "string"}}}))
    assert load_definitions(tables, tmp_path) == 1  # the invalid file is logged and skipped
    assert "broken" not in {t["name"] for t in tables.list_tables()}


# ---------------------------------------------------------------------------- validation


def test_every_write_is_validated_naming_the_column(customers: DataTables) -> None:
    with pytest.raises(InvalidInput) as info:
        customers.insert("customers", {"external_userid": "wm9", "name": "X", "spend": "a lot", "colour": "red"})
    assert "column 'spend': 'a lot' is not of type 'number'" in info.value.message
    assert "unknown column 'colour'" in info.value.message
    assert {d["column"] for d in info.value.details} == {"spend", "colour"}
    with pytest.raises(InvalidInput, match="column 'name' is required"):
        customers.insert("customers", {"external_userid": "wm9"})
    with pytest.raises(InvalidInput, match="column 'external_userid' is required"):
        customers.insert("customers", {"name": "No key"})
    with pytest.raises(InvalidInput, match=r"column 'spend': -1 is less than the minimum of 0"):
        customers.update("customers", id=rid(customers, "wm1"), values={"spend": -1})
    with pytest.raises(InvalidInput, match=r"column 'tags'\[0\]: 5 is not of type 'string'"):
        customers.upsert("customers", {"external_userid": "wm1", "tags": [5]})
    with pytest.raises(InvalidInput, match="column 'birthday': 'someday' is not a 'date'"):
        customers.insert("customers", {"external_userid": "wm9", "name": "X", "birthday": "someday"})
    with pytest.raises(InvalidInput, match="by: expected an integer for column 'orders', got 2.5"):
        customers.increment("customers", "wm1", "orders", by=2.5)
    with pytest.raises(InvalidInput, match="column 'name' is required"):
        customers.update("customers", id=rid(customers, "wm1"), values={"name": None})  # null clears, but name is required
    assert customers.get("customers", key_value="wm1")["spend"] == 1200.5  # nothing was written


def test_unknown_table_and_rows_are_not_found(customers: DataTables) -> None:
    for call in (lambda: customers.insert("nope", {"a": 1}), lambda: customers.query("nope"),
                 lambda: customers.get("customers", key_value="wm404"), lambda: customers.get("customers", id=99999),
                 lambda: customers.update("customers", id=99999, values={"city": "X"}),
                 lambda: customers.delete("customers", id=99999)):
        with pytest.raises(NotFound):
            call()


# ---------------------------------------------------------------------------- rows


def test_insert_get_and_duplicate_key(customers: DataTables) -> None:
    row = customers.get("customers", key_value="wm3")
    assert row["name"] == "Wang Fang" and row["orders"] is None and row["vip"] is None
    assert set(row) == set(CUSTOMER_COLUMNS) | {"_id", "_created_at", "_updated_at"}
    assert customers.get("customers", id=row["_id"]) == row
    with pytest.raises(Conflict, match="a row with external_userid = 'wm3' exists") as info:
        customers.insert("customers", {"external_userid": "wm3", "name": "Again"})
    assert info.value.code == "duplicate_key" and "tables.duplicate_key" in info.value.names()


def test_upsert_merges_into_the_keyed_row_or_inserts(customers: DataTables) -> None:
    before = customers.get("customers", key_value="wm2")
    row, created = customers.upsert("customers", {"external_userid": "wm2", "spend": 350, "city": None})
    assert not created and row["_id"] == before["_id"] and row["spend"] == 350 and row["city"] is None
    assert row["name"] == "Han Meimei" and row["_updated_at"] >= before["_updated_at"]
    row, created = customers.upsert("customers", {"external_userid": "wm5", "name": "Sun Li"})
    assert created and row["name"] == "Sun Li"
    # on another column: it must identify one row
    row, created = customers.upsert("customers", {"external_userid": "wm6", "name": "Li Lei", "city": "Hangzhou"}, key="name")
    assert not created and row["external_userid"] == "wm6" and row["city"] == "Hangzhou"
    customers.insert("customers", {"external_userid": "wm7", "name": "Li Lei"})
    with pytest.raises(InvalidInput, match="several rows have name = 'Li Lei'"):
        customers.upsert("customers", {"external_userid": "wm8", "name": "Li Lei"}, key="name")
    with pytest.raises(Conflict):  # moving a row onto another row's key
        customers.upsert("customers", {"external_userid": "wm2", "name": "Wang Fang", "tags": ["x"]}, key="name")


@pytest.mark.parametrize(("where", "expected"), [
    ({"city": "Shanghai"}, ["wm1", "wm3"]),
    ({"city": {"ne": "Shanghai"}}, ["wm2", "wm4"]),
    ({"spend": {"gte": 1000}}, ["wm1", "wm4"]),
    ({"spend": {"gt": 50, "lt": 5000}}, ["wm1", "wm2"]),
    ({"spend": {"lte": 50}}, ["wm3"]),
    ({"orders": 12}, ["wm4"]),
    ({"tags": {"contains": "vip"}}, ["wm1", "wm4"]),
    ({"tags": {"contains": "new"}, "city": "Beijing"}, ["wm2"]),
    ({"name": {"in": ["Li Lei", "Wang Fang", "Nobody"]}}, ["wm1", "wm3"]),
    ({"name": {"in": []}}, []),
    ({"name": {"like": "%lei"}}, ["wm1", "wm4"]),
    ({"name": {"contains": "Mei"}}, ["wm2"]),
    ({"name": {"contains": "mei"}}, ["wm2"]),  # "Meimei" holds "mei"; contains is case-sensitive
    ({"vip": True}, ["wm1", "wm4"]),
    ({"vip": {"ne": True}}, ["wm2", "wm3"]),  # unset counts as different
    ({"orders": {"exists": False}}, ["wm3"]),
    ({"profile": {"exists": True}}, ["wm4"]),
    ({"vip": None}, ["wm3"]),
    ({"_id": {"gt": 2}}, ["wm3", "wm4"]),
])
def test_query_filters_run_in_sql(shared: DataTables, where: dict, expected: list[str]) -> None:
    page = shared.query("people", where=where)
    assert ids(page) == expected and page["total"] == len(expected)


def test_query_sorts_pages_and_counts(customers: DataTables) -> None:
    page = customers.query("customers", sort=[{"column": "spend", "desc": True}], limit=2)
    assert ids(page) == ["wm4", "wm1"] and page["total"] == 4
    assert ids(customers.query("customers", sort=[{"column": "spend", "desc": True}], limit=2, offset=2)) == ["wm2", "wm3"]
    # empty values sort last either way; ties by _id
    assert ids(customers.query("customers", sort=[{"column": "orders"}])) == ["wm2", "wm1", "wm4", "wm3"]
    assert ids(customers.query("customers", sort=[{"column": "orders", "desc": True}])) == ["wm4", "wm1", "wm2", "wm3"]
    assert ids(customers.query("customers", sort=[{"column": "city"}, {"column": "spend", "desc": True}])) == ["wm2", "wm1", "wm3", "wm4"]
    assert ids(customers.query("customers", where={"tags": {"contains": "vip"}}, sort=[{"column": "_id", "desc": True}])) == ["wm4", "wm1"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"where": {"colour": "red"}}, "unknown where column 'colour'"),
    ({"where": {"spend": {"gte": "1000"}}}, r"where.spend.gte: expected a number, got string"),
    ({"where": {"spend": {"around": 3}}}, "where.spend: unknown operator 'around'"),
    ({"where": {"tags": "vip"}}, "where.tags.eq: a array column supports only contains and exists"),
    ({"where": {"vip": {"gt": True}}}, "a boolean column supports eq, ne, in and exists"),
    ({"where": {"spend": {"like": "1%"}}}, "like works on string columns"),
    ({"where": {"tags": {"contains": ["vip"]}}}, "expected a string, number or boolean item"),
    ({"where": ["city"]}, "where must be an object"),
    ({"sort": [{"column": "tags"}]}, "cannot sort by the array column 'tags'"),
    ({"sort": [{"column": "nope"}]}, "unknown sort column 'nope'"),
    ({"sort": [{"by": "spend"}]}, r"sort\[0\]: expected"),
    ({"limit": 0}, "limit must be an integer from 1 to 1000"),
    ({"offset": -1}, "offset must be a non-negative integer"),
])
def test_bad_queries_name_what_is_wrong(shared: DataTables, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        shared.query("people", **kwargs)


def test_update_and_delete_by_id_or_where(customers: DataTables) -> None:
    result = customers.update("customers", where={"city": "Shanghai"}, values={"city": "上海", "tags": ["moved"]}, actor="flow:f")
    assert result["updated"] == 2 and [r["city"] for r in result["rows"]] == ["上海", "上海"]
    assert ids(customers.query("customers", where={"city": "上海"})) == ["wm1", "wm3"]
    assert customers.update("customers", where={"city": "Nowhere"}, values={"vip": True}) == {"updated": 0, "rows": []}
    with pytest.raises(InvalidInput, match="where must name at least one column"):
        customers.update("customers", where={}, values={"vip": True})
    with pytest.raises(InvalidInput, match="give exactly one of id and where"):
        customers.delete("customers")
    assert customers.delete("customers", where={"spend": {"lt": 400}}) == {"deleted": 2}
    assert customers.delete("customers", id=rid(customers, "wm1")) == {"deleted": 1}
    assert ids(customers.query("customers")) == ["wm4"]


def test_row_writes_through_the_api_path_are_audited(customers: DataTables) -> None:
    since = time.time() - 1
    row = customers.insert("customers", {"external_userid": "wm9", "name": "Audited"}, actor="li.na", audited=True)
    customers.update("customers", id=row["_id"], values={"city": "Xi'an"}, actor="li.na", audited=True)
    customers.delete("customers", id=row["_id"], actor="li.na", audited=True)
    entries = audit.entries(customers.engine, target_type="table_row", target_id=f"customers/{row['_id']}", since=since)
    assert [(e["action"], e["actor"]) for e in entries] == [("table.row_delete", "li.na"), ("table.row_update", "li.na"),
                                                            ("table.row_insert", "li.na")]
    assert entries[1]["before"]["city"] is None and entries[1]["after"]["city"] == "Xi'an"


# ---------------------------------------------------------------------------- counters and rotations


def test_increment_creates_then_adds(tables: DataTables) -> None:
    tables.create_table("counters", {"name": {"type": "string"}, "value": {"type": "integer"}, "amount": {"type": "number"},
                                     "label": {"type": "string"}}, key="name")
    assert tables.increment("counters", "leads", "value") == 1
    assert tables.increment("counters", "leads", "value", by=4) == 5
    assert tables.increment("counters", "leads", "value", by=-2) == 3
    assert tables.increment("counters", "leads", "amount", by=0.5) == 0.5
    assert tables.get("counters", key_value="leads")["value"] == 3
    with pytest.raises(InvalidInput, match="column 'label' is a string; increment needs a number column"):
        tables.increment("counters", "leads", "label")
    tables.create_table("plain", {"n": {"type": "integer"}})
    with pytest.raises(InvalidInput, match="has no key column"):
        tables.increment("plain", "x", "n")


def test_integer_keys(tables: DataTables) -> None:
    tables.create_table("orders", {"no": {"type": "integer"}, "total": {"type": "number"}}, key="no")
    tables.insert("orders", {"no": 42, "total": 10})
    assert tables.get("orders", key_value="42")["total"] == 10
    assert tables.increment("orders", 42, "total", by=5) == 15
    with pytest.raises(InvalidInput, match="'no' is an integer column"):
        tables.get("orders", key_value="forty-two")


def test_next_in_rotation_goes_round_robin_over_matching_rows(tables: DataTables) -> None:
    tables.create_table("reps", {"userid": {"type": "string"}, "active": {"type": "boolean"}}, key="userid")
    for userid, active in (("a", True), ("b", False), ("c", True), ("d", True)):
        tables.insert("reps", {"userid": userid, "active": active})
    turns = [tables.next_in_rotation("reps", "leads", where={"active": True}) for _ in range(7)]
    assert [t["userid"] for t in turns] == ["a", "c", "d", "a", "c", "d", "a"]
    assert [t["_turn"] for t in turns] == list(range(1, 8))
    # rotations are independent; a rep who leaves is skipped, one who joins takes turns
    assert tables.next_in_rotation("reps", "after_sales")["userid"] == "a"
    tables.update("reps", where={"userid": "c"}, values={"active": False})
    tables.insert("reps", {"userid": "e", "active": True})
    assert [tables.next_in_rotation("reps", "leads", where={"active": True})["userid"] for _ in range(4)] == ["d", "e", "a", "d"]
    tables.update("reps", where={"active": True}, values={"active": False})
    with pytest.raises(NotFound, match="no row matches"):
        tables.next_in_rotation("reps", "leads", where={"active": True})


# ---------------------------------------------------------------------------- changes


def test_changes_record_inserts_updates_and_deletes(customers: DataTables) -> None:
    first = customers.changes("customers", since=0)
    assert [(c["_event"], c["external_userid"]) for c in first] == [("inserted", p["external_userid"]) for p in PEOPLE]
    watermark = first[-1]["_changed_at"]
    wm2, wm3 = rid(customers, "wm2"), rid(customers, "wm3")
    customers.update("customers", id=wm2, values={"spend": 999})
    customers.delete("customers", id=wm3)
    later = [c for c in customers.changes("customers", since=watermark) if c["_changed_at"] > watermark]
    assert [(c["_event"], c["_id"]) for c in later] == [("updated", wm2), ("deleted", wm3)]
    assert later[0]["spend"] == 999 and later[0]["_changed_at"] == later[0]["_updated_at"]
    assert later[1]["name"] == "Wang Fang"  # a deleted row comes as it was
    assert [c["_event"] for c in customers.changes("customers", since=watermark, events=["deleted"])] == ["deleted"]
    assert [c["_event"] for c in customers.changes("customers")] == ["deleted"]  # unseeded: the newest only
    with pytest.raises(InvalidInput, match="unknown event 'renamed'"):
        customers.changes("customers", events=["renamed"])
