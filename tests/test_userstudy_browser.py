"""A participant in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; nothing downloaded) completes a study on the real server,
by mouse and by keyboard, closes the browser half-way and resumes; the rows in SQLite and Table 4
are checked against what the browser did. A screenshot of the ranking page is kept (path printed).

Skipped, with the reason, where Chromium, its driver or Selenium is missing; with
SCPDIFF_REQUIRE_BROWSER=1 (set by .ci/run) such a skip is a failure, so CI cannot pass without
having run the browser.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scpdiff.cli import main
from scpdiff.userstudy.study import load_study
from scpdiff.userstudy.tokens import invite
from userstudy_support import Server, make_study, token_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _cannot_run(reason: str):
    if os.environ.get("SCPDIFF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"headless Chromium required but unavailable: {reason}")
    pytest.skip(f"headless Chromium unavailable: {reason}")


@pytest.fixture
def browser_factory(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _cannot_run("selenium is not installed (pip install -e '.[test]')")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        _cannot_run(f"{', '.join(missing)} missing (apt-get install chromium chromium-driver)")
    drivers = []

    def start():
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = tmp_path / f"profile{len(drivers)}"  # a fresh profile: nothing carried between browsers
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    f"--user-data-dir={profile}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.implicitly_wait(5)
        drivers.append(driver)
        return driver

    yield start
    for d in drivers:
        try:
            d.quit()
        except Exception:  # noqa: BLE001 -- already closed by the test
            pass


def _wait_progress(driver, answered: int, total: int):
    from selenium.webdriver.support.ui import WebDriverWait

    # The page reloads after a saved answer, so an element found by one WebDriver call may be gone
    # by the next (Chromium then reports a stale node or an inspector error, depending on timing).
    # One script reads the text and the bar together inside the page, between two loads.
    read = ("const t = document.getElementById('progress-text'), b = document.getElementById('progress');"
            "return t && b ? [t.textContent.trim(), b.getAttribute('value'), b.getAttribute('max')] : null;")
    seen = WebDriverWait(driver, 20).until(
        lambda d: (lambda r: r if r and r[0].startswith(f"{answered} of {total}") else None)(d.execute_script(read)))
    assert (seen[1], seen[2]) == (str(answered), str(total))


def _cards(driver):
    return driver.find_elements("css selector", "figure.candidate")


def _row(card, question):
    return card.find_element("css selector", f".rank-row[data-question='{question}']")


def _rank_by_mouse(driver, ranks: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Click rank ranks[question][i] for the i-th image shown; returns question -> image -> rank."""
    done: dict[str, dict[str, int]] = {}
    for i, card in enumerate(_cards(driver)):
        for question, given in ranks.items():
            _row(card, question).find_element("css selector", f".rank-button[data-rank='{given[i]}']").click()
            done.setdefault(question, {})[card.get_attribute("data-image")] = given[i]
    return done


def _rank_by_keyboard(driver, ranks: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Type the digits into the rank fields; the focus moves on by itself, Enter submits."""
    from selenium.webdriver.common.keys import Keys

    cards = _cards(driver)
    cards[0].find_element("css selector", ".rank-input").click()
    done: dict[str, dict[str, int]] = {}
    for i, card in enumerate(cards):
        for question in ("quality", "fidelity"):  # the fields' order on the page
            driver.switch_to.active_element.send_keys(str(ranks[question][i]))
            done.setdefault(question, {})[card.get_attribute("data-image")] = ranks[question][i]
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    return done


def test_a_participant_ranks_every_group_in_chromium_and_table4_follows(tmp_path, browser_factory):
    study_dir, _ = make_study(tmp_path, groups=4)
    study = load_study(study_dir)
    token = token_of(invite(study_dir, labels=["p01"])[0])
    server = Server(study_dir)
    did: dict[str, dict[str, dict[str, int]]] = {}  # group -> question -> image -> rank
    try:
        link = f"{server.url}/p/{token}"
        driver = browser_factory()
        driver.get(link)
        _wait_progress(driver, 0, 4)
        order = [g for g, _ in study.participant_order(1)]
        form = driver.find_element("id", "ranking")
        assert form.get_attribute("data-group") == order[0]
        shown = [c.get_attribute("data-image") for c in _cards(driver)]
        assert shown == dict(study.participant_order(1))[order[0]]  # this participant's image order
        assert not any(m in driver.page_source for m in ("OASIS", "normal:1", "SCP-Diff"))

        # each rank once: giving rank 1 to the second image takes it from the first
        cards = _cards(driver)
        _row(cards[0], "quality").find_element("css selector", ".rank-button[data-rank='1']").click()
        _row(cards[1], "quality").find_element("css selector", ".rank-button[data-rank='1']").click()
        assert _row(cards[0], "quality").find_element("css selector", ".rank-input").get_attribute("value") == ""
        assert _row(cards[1], "quality").find_element("css selector", ".rank-input").get_attribute("value") == "1"
        submit = driver.find_element("id", "submit")
        assert not submit.is_enabled()

        # group 1 by mouse
        did[order[0]] = _rank_by_mouse(driver, {"quality": [2, 1, 3], "fidelity": [1, 3, 2]})
        shot = tmp_path / "ranking_page.png"
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot of the ranking page: {shot}")
        assert shot.stat().st_size > 10_000
        assert submit.is_enabled()
        submit.click()
        _wait_progress(driver, 1, 4)

        # group 2 by keyboard; a digit out of range is refused on the page
        assert driver.find_element("id", "ranking").get_attribute("data-group") == order[1]
        first = _cards(driver)[0].find_element("css selector", ".rank-input")
        first.click()
        first.send_keys("9")
        assert "from 1 (best) to 3" in driver.find_element("id", "status").text
        assert first.get_attribute("value") == ""
        did[order[1]] = _rank_by_keyboard(driver, {"quality": [3, 2, 1], "fidelity": [3, 1, 2]})
        _wait_progress(driver, 2, 4)

        # the browser is closed and a new one (fresh profile) opens the link: it resumes at group 3
        driver.quit()
        driver = browser_factory()
        driver.get(link)
        _wait_progress(driver, 2, 4)
        assert driver.find_element("id", "ranking").get_attribute("data-group") == order[2]
        did[order[2]] = _rank_by_mouse(driver, {"quality": [1, 2, 3], "fidelity": [1, 2, 3]})
        driver.find_element("id", "submit").click()
        _wait_progress(driver, 3, 4)
        did[order[3]] = _rank_by_keyboard(driver, {"quality": [1, 3, 2], "fidelity": [2, 3, 1]})
        _wait_progress(driver, 4, 4)
        assert "ranked all 4 groups" in driver.find_element("id", "done").text
    finally:
        server.stop()

    # SQLite holds exactly what was clicked and typed, with the method of each image
    con = sqlite3.connect(study_dir / "answers.sqlite")
    rows = sorted(con.execute("SELECT grp, question, image, method, rank FROM ranks WHERE participant = 1"))
    assert con.execute("SELECT journal_mode FROM pragma_journal_mode").fetchone()[0] == "wal"
    con.close()
    expected = sorted((g, q, im, study.groups[g].images[im], r)
                      for g, by_q in did.items() for q, given in by_q.items() for im, r in given.items())
    assert rows == expected

    # Table 4 from those answers, against the same numbers computed here
    out = tmp_path / "table4"
    assert main(["user-study", "results", str(study_dir), "--out", str(out), "--bootstrap", "50"]) == 0
    table = pd.read_csv(out / "table4.csv", index_col="method")
    for method in study.methods:
        for question in ("quality", "fidelity"):
            scores = [4 - r for g, q, im, m, r in expected if m == method and q == question]
            assert len(scores) == 4
            assert table.loc[method, f"{question}_ahr"] == pytest.approx(np.mean(scores))
            assert table.loc[method, f"{question}_std"] == pytest.approx(np.std(scores, ddof=1))
