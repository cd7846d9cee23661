"""Sessions, CSRF, throttling, logout, password change and settings (reliability.md A.11–13)."""

from __future__ import annotations

import pytest

from tuban.errors import ConfigError
from tuban.web import WebSettings
from tuban.workflow.service import perform


@pytest.mark.parametrize("secret", ["", "changeme", "CHANGEME", "secret", "short-but-not-placeholder"])
def test_settings_refuse_placeholder_or_short_secret(secret: str) -> None:
    with pytest.raises(ConfigError, match="secret key"):
        WebSettings(database_url="sqlite:///x.sqlite", secret_key=secret)


def test_session_cookie_flags(client_for, app) -> None:
    c = client_for(None)
    c.http.get("/login")
    r = c.post("/api/session", json={"username": "a_staff", "password": "password-a_staff"})
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("tuban_session=")).lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # plain HTTP in tests; behind_tls=True adds it (next test)


def test_secure_cookie_behind_tls(world) -> None:
    from fastapi.testclient import TestClient

    from tuban.web import create_app

    app = create_app(WebSettings(database_url=world.store.url, secret_key=WebSettings.random_secret(),
                                 upgrade_on_start=False, behind_tls=True), store=world.store)
    with TestClient(app, base_url="https://testserver") as c:
        r = c.get("/login")
        assert "secure" in r.headers["set-cookie"].lower()


def test_unsafe_request_without_csrf_is_refused(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-1"]
    body = {"based_on_version": world.version("A-1"), "byd": None, "note": "csrf"}
    r = a.http.post(f"/api/patches/{pid}/review", json=body)  # cookie sent, no token
    assert r.status_code == 403
    assert r.json()["code"] == "csrf"
    r = a.http.post(f"/api/patches/{pid}/review", json=body, headers={"X-CSRF-Token": "forged-token-value-123"})
    assert r.status_code == 403
    assert world.version("A-1") == body["based_on_version"]  # no state change
    assert a.post(f"/api/patches/{pid}/review", json=body).status_code == 200


def test_login_form_needs_csrf_too(client_for) -> None:
    c = client_for(None)
    r = c.http.post("/login", data={"username": "a_staff", "password": "password-a_staff"})
    assert r.status_code == 403
    token = c.http.cookies.get("tuban_csrf")
    r = c.http.post("/login", data={"username": "a_staff", "password": "password-a_staff", "csrf_token": token})
    assert r.status_code == 303
    assert "tuban_session" in c.http.cookies


def test_wrong_and_unknown_users_get_the_same_answer(client_for) -> None:
    c = client_for(None)
    r1 = c.post("/api/session", json={"username": "a_staff", "password": "wrong-password"})
    r2 = c.post("/api/session", json={"username": "nobody", "password": "wrong-password"})
    assert r1.status_code == r2.status_code == 401
    assert r1.json() == r2.json()


def test_login_is_throttled(client_for, caplog) -> None:
    c = client_for(None)
    for _ in range(5):
        assert c.post("/api/session", json={"username": "b_staff", "password": "nope-nope"}).status_code == 401
    r = c.post("/api/session", json={"username": "b_staff", "password": "password-b_staff"})
    assert r.status_code == 429  # even the right password, until the window passes
    assert int(r.headers["retry-after"]) > 0
    assert sum("login failed" in rec.message for rec in caplog.records) == 5


def test_logout_ends_the_session_everywhere(client_for, world) -> None:
    a = client_for("a_staff")
    stolen = a.http.cookies.get("tuban_session")
    assert a.get("/api/me").status_code == 200
    assert a.post("/logout").status_code == 303
    assert a.get("/api/me").status_code == 401
    replay = client_for(None)
    replay.http.cookies.set("tuban_session", stolen)
    assert replay.get("/api/me").status_code == 401  # a copied cookie dies with the logout


def test_deactivated_user_and_forged_cookie_get_401(client_for, world) -> None:
    from tuban.workflow.accounts import set_active

    a = client_for("a_staff")
    good = a.http.cookies.get("tuban_session")
    body, sig = good.split(".")
    forged = client_for(None)
    forged.http.cookies.set("tuban_session", body + "." + sig[::-1])
    assert forged.get("/api/me").status_code == 401
    perform(world.store, world.actor("a_admin"), set_active, world.users["a_staff"], False)
    assert a.get("/api/me").status_code == 401


def test_expired_session_gets_401(client_for, app) -> None:
    a = client_for("a_staff")
    app.state.signer.max_age_s = -1
    assert a.get("/api/me").status_code == 401


def test_password_change_ends_sessions(client_for) -> None:
    a = client_for("a_staff")
    other_device = client_for("a_staff")
    r = a.post("/account/password", data={"old_password": "password-a_staff",
                                          "new_password": "a-much-longer-password"})
    assert r.status_code == 303
    assert other_device.get("/api/me").status_code == 401
    c = client_for(None)
    assert c.post("/api/session", json={"username": "a_staff", "password": "a-much-longer-password"}).status_code == 200


def test_open_redirect_is_refused(client_for) -> None:
    c = client_for(None)
    token = c.http.cookies.get("tuban_csrf")
    r = c.http.post("/login", data={"username": "a_staff", "password": "password-a_staff", "csrf_token": token,
                                    "next": "//evil.example/x"})
    assert r.headers["location"] == "/rounds"


def test_pages_render_in_chinese_by_default_and_english_on_request(client_for, world) -> None:
    a = client_for("a_staff")
    html = a.get("/rounds", headers={"Accept": "text/html"}).text
    assert "监管期次" in html
    assert 'lang="zh-CN"' in html
    a.get("/lang/en?next=/rounds")
    html = a.get("/rounds", headers={"Accept": "text/html"}).text
    assert "Supervision rounds" in html
    page = a.get(f"/rounds/{world.round_id}/review", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers


def test_html_pages_redirect_anonymous_to_login(client_for, world) -> None:
    c = client_for(None)
    r = c.get(f"/rounds/{world.round_id}/review", headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_control_characters_in_credentials_are_a_plain_failure(client_for) -> None:
    c = client_for(None)
    r = c.post("/api/session", json={"username": "a_staff\x00", "password": "password-a_staff"})
    assert r.status_code == 401


def test_healthz_shows_versions_to_users_only(client_for) -> None:
    assert client_for(None).get("/healthz").json() == {"ok": True}
    versions = client_for("viewer").get("/healthz").json()["versions"]
    assert {"GDAL", "PROJ", "GEOS"} <= set(versions)
    assert "SQLite" in versions or "PostgreSQL" in versions


def test_oversized_body_is_refused_before_parsing(world) -> None:
    from fastapi.testclient import TestClient

    from tuban.web import create_app

    app = create_app(WebSettings(database_url=world.store.url, secret_key=WebSettings.random_secret(),
                                 upgrade_on_start=False, max_body_bytes=1000), store=world.store)
    with TestClient(app) as c:
        r = c.post("/api/rounds", content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_openapi_documents_the_json_api(client_for) -> None:
    doc = client_for(None).get("/api/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/api/rounds", "/api/patches/{patch_id}", "/api/rounds/{round_id}/features",
            "/api/cases/{case_id}/advance"} <= paths
    assert not any(p.startswith("/login") for p in paths)  # pages are not part of the API
