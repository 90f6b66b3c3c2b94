"""The dashboard in a real headless browser (Debian's chromium through
chromedriver): the page loads with no console error, shows a live
experiment's numbers, the numbers move after a Feedback sent over gRPC,
and a promotion clicked on the page is recorded. Skipped without chromium
(``chromium`` fixture), failed for that under CI=true."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverutil import Running, make_experiment, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

TIMEOUT = 15.0


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Running]:
    r = start_server(tmp_path / "state", http_port=0)
    try:
        yield r
    finally:
        r.stop()


def wait_for(driver: Any, check: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(check, message=what)


def text_of(driver: Any, css: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def severe(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def arm(r: Running, arm_id: str) -> pb.Arm:
    return r.stub.GetArm(pb.GetArmRequest(experiment_id="trips", arm_id=arm_id))


def test_the_page_shows_live_numbers_that_move_after_feedback(live: Running, chromium: Any) -> None:
    make_experiment(live.stub, "trips", policy=pb.BETA_TS)
    live.stub.AddChallenger(
        pb.AddChallengerRequest(
            experiment_id="trips", name="lin", settings=pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
        )
    )
    url = live.server.dashboard.url
    chromium.get(url + "#trips")
    pulls_css = 'tr[data-arm="paris"] td.pulls'
    mean_css = 'tr[data-arm="paris"] td.mean'
    wait_for(chromium, lambda d: text_of(d, pulls_css) == "0", "paris's pulls shown as 0")
    before = arm(live, "paris").posterior
    assert text_of(chromium, mean_css) == f"{before.mean:.4f}" == "0.5000"
    assert text_of(chromium, "#exp-id") == "trips"
    assert text_of(chromium, 'tr[data-policy="lin"] td:nth-child(2)') == "challenger"
    assert text_of(chromium, "#changes tbody tr td.actor") == "anonymous"
    assert chromium.find_elements("css selector", "#rate-chart canvas"), "no uPlot chart"

    for reward in (1.0, 1.0, 1.0):
        d = live.stub.Recommend(pb.RecommendRequest(experiment_id="trips", candidates=["paris"]))
        live.stub.Feedback(pb.FeedbackRequest(event_id=d.event_id, arm_id="paris", reward=reward))
    after = arm(live, "paris").posterior
    assert after.pulls == 3 and after.mean > before.mean
    wait_for(chromium, lambda d: text_of(d, pulls_css) == "3", "paris's pulls moved to 3")
    shown = text_of(chromium, mean_css)
    assert shown == f"{after.mean:.4f}" and float(shown) > 0.79  # Beta(4, 1), forgetting aside
    decisions = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    wait_for(
        chromium,
        lambda d: text_of(d, "#counter-decisions") == str(decisions.counters.decisions),
        "the decisions counter moved",
    )
    assert severe(chromium) == []
    origin = url.rstrip("/")
    fetched = chromium.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert fetched and all(u.startswith(origin + "/") for u in fetched), fetched


def test_a_promotion_clicked_on_the_page_is_recorded(live: Running, chromium: Any) -> None:
    make_experiment(live.stub, "trips", policy=pb.BETA_TS)
    live.stub.AddChallenger(
        pb.AddChallengerRequest(
            experiment_id="trips", name="lin", settings=pb.PolicySettings(policy=pb.LIN_TS_DISJOINT)
        )
    )
    chromium.get(live.server.dashboard.url)
    button = 'tr[data-policy="lin"] button.promote'
    wait_for(chromium, lambda d: d.find_elements("css selector", button), "a Promote button")
    chromium.find_element("css selector", button).click()
    wait_for(
        chromium,
        lambda d: text_of(d, 'tr[data-policy="lin"] td:nth-child(2)') == "champion",
        "lin shown as the champion",
    )
    exp = live.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="trips"))
    assert exp.champion == "lin"
    rows = chromium.find_elements("css selector", "#changes tbody tr")
    assert rows[0].text.split()[3:5] == ["promote", "lin"]
    assert severe(chromium) == []


def test_a_token_pasted_on_the_page_is_sent(tmp_path: Path, chromium: Any) -> None:
    token = "admin-token-0123456789"
    r = start_server(
        tmp_path / "state", http_port=0, tokens={token: frozenset({"admin"})},
        token_names={token: "alice"},
    )  # fmt: skip
    try:
        meta = (("authorization", f"Bearer {token}"),)
        spec = pb.ExperimentSpec(experiment_id="kept", policy=pb.BETA_TS)
        r.stub.CreateExperiment(pb.CreateExperimentRequest(spec=spec), metadata=meta)
        chromium.get(r.server.dashboard.url)
        wait_for(chromium, lambda d: "401" in (text_of(d, "#status") or ""), "a 401 shown")
        chromium.find_element("id", "token").send_keys(token)
        chromium.find_element("css selector", "#token-form button[type=submit]").click()
        wait_for(
            chromium,
            lambda d: text_of(d, 'tr[data-experiment="kept"] td') == "kept",
            "the experiment listed once the token is sent",
        )
        stored = chromium.execute_script("return sessionStorage.getItem('bandit-dashboard-token')")
        assert stored == token
        # the refused requests before the token are the only console errors
        errors = severe(chromium)
        assert errors and all("401" in e["message"] for e in errors), errors
        with urllib.request.urlopen(r.server.dashboard.url + "static/dashboard.js") as f:
            assert "Authorization" in f.read().decode()
    finally:
        r.stop()
