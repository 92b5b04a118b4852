from pathlib import Path
from tests.browser.test_web_chat import *
def test_base(page, live):
    page.goto(f"{live.url}/chat")
    for t in ["hoi", "ik kan de huur niet betalen"]:
        n = page.locator("#log .msg.bot").count()
        page.get_by_label("Je bericht").fill(t); page.get_by_label("Je bericht").press("Enter")
        page.wait_for_function("n => document.querySelectorAll('#log .msg.bot').length > n", arg=n)
        page.wait_for_timeout(300)
        page.screenshot(path=f"/tmp/base/{n}.png")
    print(page.locator("#log").inner_text())
