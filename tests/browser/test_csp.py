"""The pages work under the strict Content-Security-Policy they are served with."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.pages import next_task, play_and_stop, wait_state
from tests.browser.samples import KINDS, connect_model, request
from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


async def watched_page(new_page: Any, **kwargs: Any) -> Any:
    page = await new_page(**kwargs)
    await page.add_init_script(RECORD_VIOLATIONS)
    return page


async def test_pages_need_nothing_a_strict_policy_forbids(make_server: MakeServer,
                                                          new_page: Any) -> None:
    server = await make_server()
    async with await connect_model(str(server.make_url("/ws"))) as model:
        for k, kind in enumerate(KINDS):
            await request(model, "feedback", kind, kind, 0, priority=10 - k)
        page = await watched_page(new_page, name="csp")
        response = await page.goto(str(server.make_url("/label/feedback?undo=0")))
        assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]
        await wait_state(page, "open")
        previous = None
        for _ in KINDS:
            task = await next_task(page, previous)
            previous = task["sample"]
            if task["kind"] in ("melody", "audio"):
                await play_and_stop(page, task["kind"])
            await page.keyboard.press("s")
        assert await page.evaluate("window.__violations") == []

        dashboard = await watched_page(new_page)
        await dashboard.goto(str(server.make_url("/dashboard")))
        await wait_state(dashboard, "open")
        await model.send({"TYPE": "LOG/KPI", "TO_ROOM": "feedback",
                          "DATA": {"version": 1, "labels": 1, "score": 0.5}})
        await dashboard.wait_for_selector('.line-plot[data-points="1"]')
        assert await dashboard.evaluate("window.__violations") == []
