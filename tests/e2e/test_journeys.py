"""Journeys through the demo in a real browser: pages, preferences, accounts, files,
and one user's files kept from another."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .conftest import ARTIFACTS, HEIGHT, MAX_UPLOAD_SIZE, NARROW, WIDE
from .helpers import (
    RED,
    check_page,
    color,
    flashes,
    log_in,
    log_out,
    register,
    snap,
    visit,
)

NewPage = Callable[..., Any]
PASSWORD = "correct horse battery"


def test_pages_layout_static_css_and_404(new_page: NewPage) -> None:
    page = new_page()
    css = []
    page.on("response", lambda r: css.append(r.status) if "/static/css/site.css" in r.url else None)

    visit(page, "/")
    assert page.title() == "Home · webframe demo"
    assert page.locator("h1").inner_text() == "Welcome to webframe"
    assert css == [200], "site.css was not served"
    # The layout (nav bar) and the rules of site.css are in force.
    assert page.locator("header.topbar nav a.brand").inner_text() == "webframe"
    assert color(page, ".topbar", "backgroundColor") == "rgb(21, 27, 43)"
    assert color(page, "main.page", "maxWidth") == "960px"
    assert page.locator("ul.cards > li").count() == 3
    snap(page, "pages", "home")

    with page.expect_navigation():
        page.click("nav >> text=About")
    assert page.url.endswith("/about")
    assert page.locator("h1").inner_text() == "About this demo"
    assert color(page, ".topbar", "backgroundColor") == "rgb(21, 27, 43)"
    snap(page, "pages", "about")

    visit(page, "/hello/Ada")
    assert page.locator("h1").inner_text() == "Hello, Ada!"

    # The home page's own link to a missing page: the styled 404 in the layout.
    visit(page, "/")
    with page.expect_navigation() as nav:
        page.click("text=missing page")
    assert nav.value.status == 404
    check_page(page)
    assert page.title().startswith("404 Not Found")
    assert page.locator("h1").inner_text() == "404 Not Found"
    assert color(page, "h1 .status") == RED
    assert color(page, ".error-message") == RED
    assert page.locator("header.topbar").count() == 1
    assert "Traceback" not in page.content()
    snap(page, "pages", "404")


def test_preferences_theme_cookie(new_page: NewPage) -> None:
    page = new_page()
    visit(page, "/preferences")
    assert page.locator("#current-theme").inner_text() == "light"
    assert page.locator("body").get_attribute("class") == "theme-light"
    assert "(default)" in page.locator("main").inner_text()

    page.select_option("#theme", "dark")
    with page.expect_navigation():
        page.click("button[value=save]")
    assert page.url.endswith("/preferences")
    check_page(page)
    assert flashes(page) == ["Theme set to dark."]
    assert page.locator("body").get_attribute("class") == "theme-dark"
    cookie = {c["name"]: c for c in page.context.cookies()}["theme"]
    assert cookie["value"] == "dark" and cookie["httpOnly"]
    snap(page, "preferences", "dark")

    # Kept across a reload (and across pages); the flash is gone.
    page.reload()
    check_page(page)
    assert flashes(page) == []
    assert page.locator("body").get_attribute("class") == "theme-dark"
    assert page.locator("#current-theme").inner_text() == "dark"
    assert page.locator("#theme").input_value() == "dark"
    # The dark theme's colours come from site.css.
    assert color(page, "body", "backgroundColor") == "rgb(17, 21, 31)"
    visit(page, "/")
    assert page.locator("body").get_attribute("class") == "theme-dark"
    snap(page, "preferences", "home-dark")

    visit(page, "/preferences")
    with page.expect_navigation():
        page.click("button[value=clear]")
    check_page(page)
    assert flashes(page) == ["Theme preference cleared."]
    assert page.locator("body").get_attribute("class") == "theme-light"
    assert "theme" not in {c["name"] for c in page.context.cookies()}
    page.reload()
    assert page.locator("#current-theme").inner_text() == "light"
    snap(page, "preferences", "cleared", widths=(1280,))


def test_register_login_flash_profile_logout(new_page: NewPage) -> None:
    page = new_page()
    user = "ada_" + os.urandom(3).hex()

    register(page, user, PASSWORD)
    assert flashes(page) == [f"Welcome, {user}! Your account is ready."]
    assert page.locator("h1").inner_text() == f"Hello, {user}"
    assert page.locator(f"nav >> text={user}").count() == 1
    snap(page, "account", "registered")
    page.reload()
    assert flashes(page) == [], "a flash message is shown once"

    log_out(page)
    assert urlsplit(page.url).path == "/", page.url
    assert flashes(page) == ["You have been logged out."]
    assert page.locator("nav >> text=Log in").count() == 1

    # A taken username: the error is shown in red in the form.
    visit(page, "/register")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    with page.expect_navigation() as nav:
        page.click("main button[type=submit]")
    assert nav.value.status == 400
    check_page(page)
    assert "taken" in page.locator(".form-error").inner_text()
    assert color(page, ".form-error") == RED
    snap(page, "account", "register-error")

    # The protected page sends a visitor to the login form, then back.
    visit(page, "/profile")
    assert re.search(r"/login\?next=%2Fprofile$", page.url), page.url
    assert page.locator("h1").inner_text() == "Log in"
    snap(page, "account", "login")

    log_in(page, user, "wrong password!")
    assert flashes(page) == ["Wrong username or password."]
    assert color(page, ".flash-error") == RED
    snap(page, "account", "login-error")

    log_in(page, user, PASSWORD)
    assert page.url.endswith("/profile"), page.url
    assert flashes(page) == [f"Welcome back, {user}."]
    snap(page, "account", "profile")
    page.reload()
    check_page(page)
    assert flashes(page) == []
    assert page.locator("h1").inner_text() == f"Hello, {user}"

    log_out(page)
    visit(page, "/profile")
    assert "/login" in page.url


def _payload(size: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


# Records every value of the progress bar and every state of the form in
# sessionStorage, so the test sees them after the page reloads on success.
WATCH_UPLOAD_JS = """
() => {
  sessionStorage.setItem("e2e-upload", JSON.stringify({values: [], states: []}));
  const form = document.getElementById("upload-form");
  const bar = document.getElementById("upload-progress");
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("e2e-upload"));
    seen.values.push(Number(bar.value));
    seen.states.push(form.getAttribute("data-state"));
    sessionStorage.setItem("e2e-upload", JSON.stringify(seen));
  }).observe(form, {attributes: true, subtree: true, attributeFilter: ["value", "data-state"]});
}
"""


def upload(page: Any, files: list[dict[str, Any]], shot: str | None = None) -> dict[str, Any]:
    """Upload ``files`` through the form; returns what the progress bar went through.

    With ``shot``, the upload is slowed down (DevTools network throttling) so that
    the bar can be seen moving, and a screenshot of it is saved."""
    page.evaluate(WATCH_UPLOAD_JS)
    page.set_input_files("#upload-files", files)
    cdp = None
    if shot:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 400_000},
        )
    with page.expect_navigation():  # the page reloads once the upload is done
        page.click("#upload-button")
        if shot:
            page.wait_for_function(
                "document.getElementById('upload-progress').value >= 20", polling="raf"
            )
            page.screenshot(path=str(ARTIFACTS / f"{shot}-{WIDE}.png"), full_page=True)
    if cdp is not None:
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        cdp.detach()
    check_page(page)
    seen: dict[str, Any] = json.loads(page.evaluate("sessionStorage.getItem('e2e-upload')"))
    return seen


def file_rows(page: Any) -> dict[str, dict[str, str]]:
    rows = {}
    for row in page.locator("#file-table tbody tr").all():
        name = row.locator(".file-name").inner_text()
        rows[name] = {
            "id": row.get_attribute("data-file-id") or "",
            "bytes": row.locator(".file-size").get_attribute("data-bytes") or "",
            "shown": row.locator(".file-size").inner_text(),
        }
    return rows


def test_files_upload_progress_download_delete(new_page: NewPage) -> None:
    page = new_page()
    user = "files_" + os.urandom(3).hex()
    register(page, user, PASSWORD)
    visit(page, "/files")
    assert page.locator("#no-files").is_visible()
    snap(page, "files", "empty")

    report = _payload(300_000, "report")
    notes = b"line one\nline two\n" * 50
    seen = upload(
        page,
        [
            {"name": "report.bin", "mimeType": "application/octet-stream", "buffer": report},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": notes},
        ],
        shot="files-uploading",
    )
    assert seen["states"][0] == "uploading" and seen["states"][-1] == "done", seen
    assert seen["values"] and seen["values"][-1] == 100, seen
    assert any(0 < v < 100 for v in seen["values"]), f"no progress in between: {seen}"
    assert seen["values"] == sorted(seen["values"]), "the bar only moves forward"

    assert flashes(page) == ["Uploaded report.bin, notes.txt."], "the script path says it too"
    assert not page.locator("#no-files").is_visible()
    rows = file_rows(page)
    assert set(rows) == {"report.bin", "notes.txt"}
    assert rows["report.bin"]["bytes"] == str(len(report))
    assert re.fullmatch(r"293(\.0)? KiB", rows["report.bin"]["shown"]), rows
    assert rows["notes.txt"]["shown"] == f"{len(notes)} bytes"
    snap(page, "files", "two-uploaded")

    # Download: the browser saves exactly the bytes uploaded, under the original name.
    with page.expect_download() as dl:
        page.click("a.file-name >> text=report.bin")
    assert dl.value.suggested_filename == "report.bin"
    with open(dl.value.path(), "rb") as f:
        assert f.read() == report

    # Delete with the button: first a confirmation; dismissed, nothing is sent.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.method))
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click(f"tr[data-file-id='{rows['notes.txt']['id']}'] a.delete-link")
    page.wait_for_timeout(300)
    assert dialogs == ["Delete notes.txt? This cannot be undone."]
    assert "DELETE" not in requests and "POST" not in requests
    assert page.url.endswith("/files"), "the script stays on the list"
    assert set(file_rows(page)) == {"report.bin", "notes.txt"}

    # Accepted: fetch() sends DELETE with the XSRF header; the row goes, and the page
    # says so in the words the no-JS path flashes.
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.click(f"tr[data-file-id='{rows['notes.txt']['id']}'] a.delete-link")
    assert deleted.value.status == 204
    assert deleted.value.request.headers.get("x-xsrftoken")
    page.wait_for_selector(f"tr[data-file-id='{rows['notes.txt']['id']}']", state="detached")
    assert flashes(page) == ["Deleted notes.txt."]
    assert not page.locator("#no-files").is_visible()

    # The last file: the empty state appears without a reload.
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.click("a.delete-link")
    assert deleted.value.status == 204
    page.locator("#no-files").wait_for(state="visible")
    assert page.locator("#file-table").count() == 0
    assert flashes(page) == ["Deleted report.bin."]
    check_page(page)
    snap(page, "files", "script-deleted-last")
    page.reload()
    check_page(page)
    assert file_rows(page) == {} and page.locator("#no-files").is_visible()


def test_files_delete_without_javascript(new_page: NewPage) -> None:
    page = new_page()
    register(page, "nojs_" + os.urandom(3).hex(), PASSWORD)
    visit(page, "/files")
    upload(page, [{"name": "old.txt", "mimeType": "text/plain", "buffer": b"old\n" * 10}])

    # The same session in a browser with JavaScript off: the button posts the
    # _method=DELETE form, and the page comes back with a flash.
    nojs = new_page(js=False, storage_state=page.context.storage_state())
    visit(nojs, "/files")
    assert nojs.locator("#upload-progress-wrap").is_hidden()
    assert file_rows(nojs)["old.txt"]["shown"] == "40 bytes"
    snap(nojs, "files", "nojs-list")
    # Delete opens a page that asks first; Cancel goes back with nothing deleted.
    with nojs.expect_navigation():
        nojs.click("a.delete-link")
    assert re.search(r"/files/\d+/delete$", nojs.url), nojs.url
    check_page(nojs)
    assert nojs.locator("h1").inner_text() == "Delete this file?"
    assert "old.txt (40 bytes) will be removed" in nojs.locator("main").inner_text()
    snap(nojs, "files", "nojs-confirm")
    with nojs.expect_navigation():
        nojs.click("text=Cancel")
    assert set(file_rows(nojs)) == {"old.txt"}
    with nojs.expect_navigation():
        nojs.click("a.delete-link")
    with nojs.expect_navigation() as nav:
        nojs.click("button.danger")
    assert nav.value.status == 200, (nav.value.status, nojs.locator("main").inner_text())
    assert nojs.url.endswith("/files")
    check_page(nojs)
    assert flashes(nojs) == ["Deleted old.txt."]
    assert nojs.locator("#no-files").is_visible()
    snap(nojs, "files", "nojs-deleted")


def test_files_too_large_shows_the_413_message(new_page: NewPage) -> None:
    page = new_page()
    register(page, "big_" + os.urandom(3).hex(), PASSWORD)
    visit(page, "/files")
    big = [{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 3_000_000}]
    assert MAX_UPLOAD_SIZE < 3_000_000
    # 3 MB over a 2 MB limit: the page says so before sending anything.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.set_input_files("#upload-files", big)
    page.click("#upload-button")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert (
        error.inner_text()
        == "big.bin is larger than the limit of 1.9 MiB per file; nothing was sent."
    )
    assert posts == []
    half = b"y" * 1_100_000
    page.set_input_files(
        "#upload-files",
        [
            {"name": "a.bin", "mimeType": "application/octet-stream", "buffer": half},
            {"name": "b.bin", "mimeType": "application/octet-stream", "buffer": half},
        ],
    )
    page.click("#upload-button")
    page.wait_for_function("document.getElementById('upload-error').textContent.includes('in all')")
    assert (
        error.inner_text()
        == "These files are larger than 1.9 MiB in all; upload them in smaller groups."
    )
    assert posts == []

    # A page that does not check (an older copy, a tampered one): the server's 413
    # message appears in the page, in red.
    page.evaluate("document.getElementById('upload-files').removeAttribute('data-max-size')")
    page.set_input_files("#upload-files", big)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#upload-button")
    assert posted.value.status == 413
    page.wait_for_function("document.getElementById('upload-form').dataset.state === 'error'")
    error.wait_for(state="visible")
    text = error.inner_text()
    # The server's own message, in the words of the form's label.
    label = page.locator("label[for=upload-files]").inner_text()
    assert "1.9 MiB each" in label, label
    assert text == "This upload is 2.9 MiB; the limit is 1.9 MiB per file and 1.9 MiB in all."
    assert color(page, "#upload-error") == RED
    snap(page, "files", "too-large")
    page.reload()
    assert page.locator("#no-files").is_visible(), "nothing of the refused upload is listed"


def test_another_user_cannot_see_or_fetch_files(new_page: NewPage) -> None:
    owner = new_page()
    register(owner, "owner_" + os.urandom(3).hex(), PASSWORD)
    visit(owner, "/files")
    secret = b"my secret file\n"
    upload(owner, [{"name": "secret.txt", "mimeType": "text/plain", "buffer": secret}])
    file_id = file_rows(owner)["secret.txt"]["id"]
    assert file_id

    other = new_page()  # another browser context: another visitor, no shared cookies
    register(other, "other_" + os.urandom(3).hex(), PASSWORD)
    visit(other, "/files")
    assert other.locator("#file-table").count() == 0
    assert other.locator("#no-files").is_visible()
    snap(other, "isolation", "other-empty")

    statuses = other.evaluate(
        """async (url) => {
          const token = document.querySelector('meta[name="xsrf-token"]').content;
          const get = await fetch(url);
          const del = await fetch(url, {method: "DELETE",
            headers: {"X-XSRFToken": token, "Accept": "application/json"}});
          return [get.status, del.status, await get.text()];
        }""",
        f"/files/{file_id}",
    )
    assert statuses[:2] == [404, 404], statuses
    assert "secret" not in statuses[2]
    r = other.goto(f"/files/{file_id}")
    assert r is not None and r.status == 404
    check_page(other)
    snap(other, "isolation", "other-404", widths=(1280,))

    # A visitor who is not logged in is sent to log in; the owner still has the file.
    anon = new_page()
    anon.goto(f"/files/{file_id}")
    assert "/login" in anon.url
    owner.reload()
    assert set(file_rows(owner)) == {"secret.txt"}
    with owner.expect_download() as dl:
        owner.click("a.file-name")
    with open(dl.value.path(), "rb") as f:
        assert f.read() == secret


# The lines an element's own text takes (a Range over a text node has one box per
# line; screen-reader-only children are left out), and the width of its table cell.
LINES_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).map((el) => {
  const tops = new Set();
  for (const node of el.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) tops.add(Math.round(r.top));
  }
  const cell = el.closest("td") || el;
  return [el.textContent.trim(), tops.size, Math.round(cell.getBoundingClientRect().width)];
})
"""


def test_files_at_phone_width_names_and_sizes_do_not_wrap(new_page: NewPage) -> None:
    page = new_page()
    page.set_viewport_size({"width": NARROW, "height": HEIGHT})
    register(page, "phone_" + os.urandom(3).hex(), PASSWORD)
    visit(page, "/files")
    long_name = "quarterly-report-2026-final-version-approved-by-everyone.pdf"
    upload(
        page,
        [
            {
                "name": long_name,
                "mimeType": "application/pdf",
                "buffer": b"%PDF-1.4\n" + b"x" * 1_200_000,
            },
            {
                "name": "IMG_20261201_093000.jpg",
                "mimeType": "image/jpeg",
                "buffer": b"\xff\xd8\xff" + b"j" * 48_000,
            },
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"n" * 900},
        ],
    )
    snap(page, "files", "phone-long-names", widths=(NARROW,))
    page.set_viewport_size({"width": NARROW, "height": HEIGHT})
    shown = {name: row["shown"] for name, row in file_rows(page).items()}
    assert shown == {
        long_name: "1.1 MiB",
        "IMG_20261201_093000.jpg": "46.9 KiB",
        "notes.txt": "900 bytes",
    }
    # Sizes and Delete buttons stay on one line; names break only when they must,
    # and their column keeps most of the row.
    for text, lines, _width in page.evaluate(LINES_JS, "td.file-size, td a.delete-link"):
        assert lines == 1, (text, lines)
    assert len(page.evaluate(LINES_JS, "td.file-size, td a.delete-link")) == 6
    table_width = page.eval_on_selector("#file-table", "el => el.getBoundingClientRect().width")
    for text, lines, width in page.evaluate(LINES_JS, "a.file-name"):
        assert width >= 0.8 * table_width, (text, width, table_width)
        assert lines <= (3 if text == long_name else 1), (text, lines)
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner


def test_error_pages_keep_the_user_and_the_theme(new_page: NewPage) -> None:
    page = new_page()
    user = "dark_" + os.urandom(3).hex()
    register(page, user, PASSWORD)
    visit(page, "/preferences")
    page.select_option("#theme", "dark")
    with page.expect_navigation():
        page.click("button[value=save]")
    for path in ("/no-such-page", "/files/987654"):
        visit(page, path, status=404)
        assert page.locator("h1").inner_text() == "404 Not Found"
        assert page.locator("body").get_attribute("class") == "theme-dark"
        assert color(page, "body", "backgroundColor") == "rgb(17, 21, 31)"
        assert page.locator(f"nav >> text={user}").count() == 1
        assert page.locator("nav >> text=Log out").count() == 1
    snap(page, "pages", "404-dark-logged-in")
