"""Shared fixtures: a real HTTP server, SQLite and PostgreSQL databases, engines, Prefect."""
from __future__ import annotations

import os
import time
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

from tests.fake_http import FakeHttp, ServerThread

PG_ADMIN_URL = os.environ.get("FLOWLINK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep key files and default databases out of the working tree."""
    home = tmp_path_factory.mktemp("flowlink-home")
    old = os.environ.get("FLOWLINK_HOME")
    os.environ["FLOWLINK_HOME"] = str(home)
    yield
    if old is None:
        os.environ.pop("FLOWLINK_HOME", None)
    else:
        os.environ["FLOWLINK_HOME"] = old


@pytest.fixture(scope="session")
def fake_http() -> Iterator[FakeHttp]:
    """The programmable HTTP server of tests/fake_http.py, on 127.0.0.1."""
    fake = FakeHttp()
    server = ServerThread(fake.app).start()
    fake.base_url = f"http://127.0.0.1:{server.port}"
    yield fake
    server.stop()


@pytest.fixture()
def http(fake_http: FakeHttp) -> FakeHttp:
    """The fake HTTP server, with counters reset for this test."""
    fake_http.reset()
    return fake_http


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server's URL. When it is down the test fails, unless FLOWLINK_SKIP_PG=1 is set on purpose."""
    if not _postgres_available():
        if os.environ.get("FLOWLINK_SKIP_PG") == "1":
            pytest.skip("PostgreSQL tests skipped on purpose (FLOWLINK_SKIP_PG=1)")
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; set FLOWLINK_SKIP_PG=1 to skip these tests on purpose")
    return PG_ADMIN_URL


@pytest.fixture()
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"flowlink_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    """A new SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'flowlink.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowlink.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture()
def flow_engine(sqlite_url: str):
    """A FlowEngine on a fresh SQLite database."""
    from engine.runtime import FlowEngine

    engine = FlowEngine(sqlite_url)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def prefect_server(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on PostgreSQL for the whole session; PREFECT_API_URL points at it."""
    from engine.prefect_server import prefect_server as start_server, using_prefect_api

    name = f"flowlink_prefect_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    host = postgres_admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        with start_server(tmp_path_factory.mktemp("prefect-home"), f"postgresql+asyncpg://{host}/{name}") as api:
            with using_prefect_api(api):
                yield api
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


#: The first admin's password in API tests (the app reads FLOWLINK_ADMIN_PASSWORD on first start).
ADMIN_PASSWORD = "test-admin-password"


def wait_runs(client, flow_id: str, count: int, timeout: float = 30) -> list[dict]:
    """The first `count` finished runs of a flow (full records), polling the API until they exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get("/api/runs", params={"flow_id": flow_id}).json()
        done = [r for r in found if r["status"] in ("succeeded", "failed")]
        if len(done) >= count:
            return [client.get(f"/api/runs/{r['id']}").json() for r in done]
        time.sleep(0.1)
    raise AssertionError(f"{flow_id}: fewer than {count} finished runs")


def login(client, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """Log in through the API; returns the session token."""
    answer = client.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def admin_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """FLOWLINK_ADMIN_PASSWORD for apps started in this test: the first admin gets this password."""
    monkeypatch.setenv("FLOWLINK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return ADMIN_PASSWORD


@pytest.fixture()
def api_client(sqlite_url: str, admin_password: str):
    """The app on a fresh SQLite database with the example flows, logged in as the first admin."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(sqlite_url, load_examples=True)) as client:
        client.headers.update(bearer(login(client)))
        yield client
