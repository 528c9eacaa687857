"""The API docs of a booted service work in a real headless Chromium under their own CSP.

The default variant is rendered, installed and served as a process; /docs (Swagger UI) and
/redoc (ReDoc) are opened in Debian's Chromium. Each page must render the API, answer a few
clicks, report no Content-Security-Policy violation, log no console error, throw no page
error, and send every request to the service's own origin.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, unavailable
from harness import Service, serving
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

# The default variant only: in a whole-suite run it shares the session's rendered project.
pytestmark = pytest.mark.variants(lambda variant: variant.id == "default")

TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Runs in the page before any of its scripts: keeps every CSP violation the page reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    blockedURI: event.blockedURI,
    violatedDirective: event.violatedDirective,
    sourceFile: event.sourceFile,
    sample: event.sample,
  });
});
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    if executable is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def service(project: Project, database_env: dict[str, str]) -> Iterator[Service]:
    with serving(project.path, project.slug, database_env) as running:
        yield running


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-screenshots")


@dataclass
class Watched:
    """What one page did: everything the assertions look at."""

    origin: str
    policy: str = ""
    violations: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")
        if message.type == "error":
            self.console_errors.append(message.text)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.failures.append(f"{response.status} {response.url}")

    def on_request_failed(self, request: Request) -> None:
        self.failures.append(f"{request.failure} {request.url}")

    def foreign_requests(self) -> list[str]:
        own_blob = f"blob:{self.origin}/"
        return [
            url
            for url in self.requests
            if not (
                url.startswith(f"{self.origin}/")
                or url.startswith("data:")
                or url.startswith(own_blob)
            )
        ]

    def report(self) -> str:
        return "\n".join(
            [
                f"CSP violations: {self.violations}",
                f"page errors: {self.page_errors}",
                "console:",
                *self.console,
                "requests:",
                *self.requests,
            ]
        )

    def assert_clean(self) -> None:
        report = self.report()
        assert not self.violations, f"CSP violations:\n{report}"
        assert not self.console_errors, f"console errors:\n{report}"
        assert not self.page_errors, f"page errors:\n{report}"
        foreign = self.foreign_requests()
        assert not foreign, f"requests to other origins: {foreign}\n{report}"
        assert not self.failures, f"failed requests: {self.failures}\n{report}"


def directives(policy: str) -> dict[str, str]:
    parsed = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            parsed[name] = value.strip()
    return parsed


def visit(
    browser: Browser, service: Service, path: str, screenshot: Path, act: Callable[[Page], None]
) -> Watched:
    """Open `path` in a fresh context, let `act` drive it, and record what happened."""
    watched = Watched(origin=service.url)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", watched.on_console)
        page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
        page.on("request", watched.on_request)
        page.on("response", watched.on_response)
        page.on("requestfailed", watched.on_request_failed)
        try:
            response = page.goto(f"{service.url}{path}", wait_until="load")
            assert response is not None and response.status == 200
            watched.policy = response.headers.get("content-security-policy", "")
            act(page)
            # Late requests (images, the worker) and the violations they raise have settled.
            page.wait_for_load_state("networkidle")
        except PlaywrightError as error:
            with contextlib.suppress(PlaywrightError):
                watched.violations = page.evaluate("window.__cspViolations")
            raise AssertionError(f"{path}: {error.message}\n{watched.report()}") from None
        watched.violations = page.evaluate("window.__cspViolations")
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    # Guard against a vacuous pass: the page must be under the strict docs policy.
    policy = directives(watched.policy)
    assert policy.get("default-src") == "'none'", watched.policy
    assert policy.get("script-src") == "'self'", watched.policy
    assert "unsafe-eval" not in watched.policy
    return watched


def drive_swagger_ui(page: Page) -> None:
    title = page.wait_for_selector(".swagger-ui .info .title")
    assert title is not None and "My Service" in title.inner_text()
    # Expanding an operation and trying it out draws icons, selects and a live response.
    operation = page.locator("#operations-health-live_health_live_get")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    schema = page.locator("section.models .json-schema-2020-12").first
    schema.locator(".json-schema-2020-12-accordion").first.click()
    schema.locator(".json-schema-2020-12-property").first.wait_for()


def drive_redoc(page: Page) -> None:
    heading = page.locator("h1", has_text="My Service")
    heading.wait_for()
    assert heading.is_visible()
    page.locator("h2", has_text="Live").first.wait_for()
    page.locator("span", has_text="/health/live").first.wait_for()
    # The search index runs in a worker: a result proves the worker was allowed to start.
    page.locator("input.search-input").fill("live")
    result = page.locator("[data-role='search:results'] li", has_text="Live").first
    result.wait_for()
    result.click()
    page.locator("h2", has_text="Live").first.hover()


def test_swagger_ui_works_under_its_csp(
    browser: Browser, service: Service, screenshots: Path
) -> None:
    visit(browser, service, "/docs", screenshots / "docs.png", drive_swagger_ui).assert_clean()


def test_redoc_works_under_its_csp(browser: Browser, service: Service, screenshots: Path) -> None:
    visit(browser, service, "/redoc", screenshots / "redoc.png", drive_redoc).assert_clean()
