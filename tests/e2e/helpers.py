"""What every journey does on every page: accessibility basics, screenshots at two
widths (with no horizontal overflow on a phone), and the account steps."""

from __future__ import annotations

from typing import Any

from .conftest import ARTIFACTS, HEIGHT, NARROW, WIDE

# Returns a list of problems (empty: fine). "Labelled" means label[for=id], a
# wrapping <label>, aria-label or aria-labelledby.
A11Y_JS = """
() => {
  const problems = [];
  const describe = (el) => el.outerHTML.slice(0, 140);
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const byFor = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
    const named = (el.getAttribute("aria-label") || "").trim()
      || (el.getAttribute("aria-labelledby") || "").trim();
    if (!byFor && !el.closest("label") && !named) {
      problems.push("unlabelled control: " + describe(el));
    }
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("image without alt: " + describe(img));
  }
  for (const b of document.querySelectorAll("button")) {
    if (!b.textContent.trim() && !(b.getAttribute("aria-label") || "").trim())
      problems.push("button without a name: " + describe(b));
  }
  if (!document.title.trim()) problems.push("no <title>");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} <h1> elements (want exactly one)`);
  return problems;
}
"""


def check_page(page: Any) -> None:
    """Accessibility basics of the page now shown."""
    problems = page.evaluate(A11Y_JS)
    assert problems == [], f"{page.url}: {problems}"


def overflow(page: Any) -> tuple[int, int]:
    """(scrollWidth, innerWidth): wider content than the window scrolls sideways."""
    return tuple(page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"))


def snap(page: Any, journey: str, step: str, widths: tuple[int, ...] = (WIDE, NARROW)) -> None:
    """Check the page, then save ``artifacts/<journey>-<step>-<width>.png`` per width;
    at phone width the page must not scroll sideways."""
    check_page(page)
    for width in widths:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        if width <= NARROW:
            scroll, inner = overflow(page)
            assert scroll <= inner, f"{page.url} overflows at {width}px: {scroll} > {inner}"
        page.screenshot(path=str(ARTIFACTS / f"{journey}-{step}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDE, "height": HEIGHT})


def visit(page: Any, path: str, status: int = 200) -> Any:
    response = page.goto(path)
    assert response is not None and response.status == status, (path, response and response.status)
    check_page(page)
    return response


def flashes(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".flashes .flash").all_inner_texts()]


def color(page: Any, selector: str, prop: str = "color") -> str:
    return str(page.eval_on_selector(selector, f"el => getComputedStyle(el).{prop}"))


RED = "rgb(180, 35, 24)"  # --error in site.css


def register(page: Any, username: str, password: str) -> None:
    """Register through the form; the new user lands on /profile, logged in."""
    visit(page, "/register")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("form.stack button[type=submit]")
    assert page.url.endswith("/profile"), page.url
    check_page(page)


def log_in(page: Any, username: str, password: str) -> None:
    """Fill the login form already shown and submit it."""
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("main form.stack button[type=submit]")
    check_page(page)


def log_out(page: Any) -> None:
    with page.expect_navigation():
        page.click("nav button:has-text('Log out')")
    check_page(page)
