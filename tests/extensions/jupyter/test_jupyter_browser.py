"""JupyterLab in headless Chromium: from the panel's incident to a running, filled-in runbook.

Debian's chromium and chromedriver (/usr/bin), driven by Selenium with the driver path set,
so Selenium Manager downloads nothing. Screenshots of every step go to the test's tmp dir
(and, with OPSLOOP_JUPYTER_SCREENSHOTS=<folder>, there too: docs/img/jupyter/ is made so).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_testkit import SECRET, Lab, incident_project

from opsloop.respond import incident_view

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "Debian's chromium and chromium-driver are needed: apt-get install -y chromium "
        "chromium-driver (.ci/services.sh installs them)"
    )
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # running as root (CI, this machine)
        "--disable-dev-shm-usage",
        "--window-size=1440,1000",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_incident_to_filled_in_runbook_in_two_clicks(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    project, incident_id = incident_project(tmp_path / "proj")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    lab = Lab(tmp_path / "proj", tmp_path / "jupyter")
    wait = WebDriverWait(driver, 45)

    def shot(name: str) -> None:
        driver.save_screenshot(str(shots / f"{name}.png"))

    def css(selector: str, clickable: bool = False):  # type: ignore[no-untyped-def]
        cond = ec.element_to_be_clickable if clickable else ec.visibility_of_element_located
        return wait.until(cond((By.CSS_SELECTOR, selector)))

    try:
        driver.get(f"{lab.url}/lab?token={lab.token}")
        css('.jp-SideBar [data-id="opsloop-panel"]', clickable=True).click()  # open the sidebar
        # 1. the panel lists the project's open incident
        card = css(f'.opsloop-incident[data-incident="{incident_id}"]', clickable=True)
        assert "3 of 12 features drifted" in card.text
        shot("01-panel-lists-the-incident")

        # 2. two clicks: the incident, then a runbook -> a filled-in copy opens and runs
        card.click()  # click 1
        css(
            '.opsloop-runbook[data-runbook="acknowledge"]:not([disabled])', clickable=True
        ).click()  # click 2
        wait.until(
            lambda d: (
                "acknowledge.ipynb"
                in d.find_element(
                    By.CSS_SELECTOR, "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current"
                ).text
            )
        )
        cells = css(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        wait.until(lambda d: f'incident_id = "{incident_id}"' in cells.text)
        css(".opsloop-approval .opsloop-approve", clickable=True)  # it ran: the widgets are there
        shot("02-runbook-opened-with-the-incident")

        # 3. the launcher form refuses a wrong type, beside the field; the secret is cleared
        days = css(".opsloop-launcher .opsloop-param-days input")
        days.clear()
        days.send_keys("seven", Keys.TAB)  # the blur sends the value to the kernel
        token = css(".opsloop-launcher .opsloop-param-api_token input")
        token.send_keys(SECRET, Keys.TAB)
        # the kernel took the secret and emptied the field: it is in no widget state now
        wait.until(lambda d: "secret received" in (token.get_attribute("placeholder") or ""))
        assert token.get_attribute("value") == ""
        css(".opsloop-launcher .opsloop-run", clickable=True).click()
        wait.until(
            lambda d: "must be int" in d.find_element(By.CSS_SELECTOR, ".opsloop-launcher").text
        )
        shot("03-launcher-refuses-a-wrong-type")

        # 4. an approval click lands in the audit log, with the Jupyter user as approver
        css(".opsloop-approval .opsloop-approve", clickable=True).click()
        wait.until(
            lambda d: "done:" in d.find_element(By.CSS_SELECTOR, ".opsloop-approval-status").text
        )
        approvals = [e for e in project.audit.entries() if e["action"] == "action.approve"]
        assert [e["target"] for e in approvals] == [incident_id]
        assert incident_view(project, incident_id).status == "acknowledged"
        shot("04-approval-recorded")

        # 5. the widgets render in the executed notebook: timeline and drift plot
        view = css(".opsloop-incident-view")
        assert "signal" in view.text and "alert" in view.text
        css(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img")
        driver.find_element(By.CSS_SELECTOR, ".opsloop-incident-view button").click()  # refresh
        wait.until(
            lambda d: (
                "action.approve" in d.find_element(By.CSS_SELECTOR, ".opsloop-incident-view").text
            )
        )
        driver.execute_script(
            "window.jupyterapp && window.jupyterapp.commands.execute('docmanager:save')"
        )
        driver.find_element(
            By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
        ).click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
        saved = project.root / "incidents" / incident_id / "acknowledge.ipynb"
        wait.until(lambda d: "application/vnd.jupyter.widget-view+json" in saved.read_text())
        shot("05-widgets-in-the-executed-notebook")
        page = driver.page_source
    except Exception:
        shot("failed")  # what the browser showed when a step failed
        raise
    finally:
        lab.stop()

    # nothing secret in the saved notebook, its widget state, the page, the records or audit log
    notebook = json.loads(saved.read_text())
    for text in (
        saved.read_text(),
        json.dumps(notebook.get("metadata", {})),  # widget state, when saved
        page,
        project.audit.path.read_text(),
        Path(lab.log.name).read_text(),
    ):
        assert SECRET not in text
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-panel-lists-the-incident.png",
        "02-runbook-opened-with-the-incident.png",
        "03-launcher-refuses-a-wrong-type.png",
        "04-approval-recorded.png",
        "05-widgets-in-the-executed-notebook.png",
    ]
    keep = os.environ.get("OPSLOOP_JUPYTER_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for png in shots.iterdir():
            shutil.copy(png, Path(keep) / png.name)
