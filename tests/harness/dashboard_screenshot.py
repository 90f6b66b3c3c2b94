"""The dashboard's screenshot in docs/dashboard.md, taken with the real
headless browser against a live server.

``PYTHONPATH=tests .venv/bin/python -m harness.dashboard_screenshot``
(``--out``, default ``docs/img/dashboard.png``; ``--seconds`` of traffic,
default 30) starts a server in this process with the dashboard and an admin
token named ``ops-alice``, creates three experiments (``trips``:
``beta_ts`` with a ``lin_ts_disjoint`` challenger, in a world whose click
rates depend on the context; ``banners`` and ``ratings``), sends Recommend
and Feedback for ``--seconds``, promotes the challenger through the
dashboard's API with the token halfway, and saves a full-page screenshot of
``trips`` from Debian's chromium (``chromium`` and ``chromedriver`` on PATH).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from bandit_engine.core import Context, ExperimentConfig
from bandit_engine.server import ServerSettings, create_server, stop_server

TOKEN = "dashboard-screenshot-token-0123"
ARMS = ("paris", "rome", "lisbon", "oslo")
#: per-arm weights of the context (u, v) and a bias: the click logit
WEIGHTS = np.array([[2.0, -1.0, -1.0], [-2.0, 1.0, -1.2], [0.5, 2.0, -1.5], [-1.0, -2.0, -1.0]])


def click_prob(arm: int, x: np.ndarray) -> float:
    w = WEIGHTS[arm]
    return 1.0 / (1.0 + math.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))


def drive(engine: object, stop: threading.Event, seed: int = 0) -> None:
    """Recommend and Feedback on the three experiments until ``stop``."""
    rng = np.random.default_rng(seed)
    e = engine  # the Engine of the server
    while not stop.is_set():
        x = rng.uniform(-1, 1, 2)
        d = e.recommend("trips", Context(dense=x.tolist()), (), 1)  # type: ignore[attr-defined]
        arm = ARMS.index(d.arm_ids[0])
        e.feedback(d.event_id, d.arm_ids[0], float(rng.random() < click_prob(arm, x)))  # type: ignore[attr-defined]
        b = e.recommend("banners", None, (), 1)  # type: ignore[attr-defined]
        rate = {"blue": 0.06, "green": 0.03, "red": 0.045}[b.arm_ids[0]]
        e.feedback(b.event_id, b.arm_ids[0], float(rng.random() < rate))  # type: ignore[attr-defined]
        r = e.recommend("ratings", Context(categorical=["genre=drama"]), (), 1)  # type: ignore[attr-defined]
        mean = {"film-a": 3.8, "film-b": 3.1}[r.arm_ids[0]]
        e.feedback(r.event_id, r.arm_ids[0], float(np.clip(rng.normal(mean, 0.8), 1, 5)))  # type: ignore[attr-defined]
        time.sleep(0.004)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/img/dashboard.png")
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    state = tempfile.mkdtemp(prefix="dashboard-shot-")
    settings = ServerSettings(
        port=0, state_dir=state, seed=0, http_port=0,
        tokens={TOKEN: frozenset({"admin"})}, token_names={TOKEN: "ops-alice"},
    )  # fmt: skip
    server, _, engine = create_server(settings)
    server.start()
    try:
        engine.create_experiment(
            ExperimentConfig("trips", policy="beta_ts", dim=4, dense_dim=2, shadow_rate=0.5)
        )
        engine.add_arms("trips", [(a, None) for a in ARMS])
        engine.challengers.add("trips", "lin", {"policy": "lin_ts_disjoint"}, "ops-alice")
        engine.create_experiment(ExperimentConfig("banners", policy="beta_ts"))
        engine.add_arms("banners", [(a, None) for a in ("blue", "green", "red")])
        engine.create_experiment(
            ExperimentConfig("ratings", policy="lin_ts_disjoint", reward_min=1, reward_max=5)
        )
        engine.add_arms("ratings", [("film-a", None), ("film-b", None)])
        stop = threading.Event()
        worker = threading.Thread(target=drive, args=(engine, stop), daemon=True)
        worker.start()
        time.sleep(args.seconds / 2)
        url = server.dashboard.url
        req = urllib.request.Request(
            url + "api/promote/trips",
            data=json.dumps({"name": "lin"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(req) as resp:
            assert json.loads(resp.read())["champion"] == "lin"
        time.sleep(args.seconds / 2)

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1400,900", "--force-device-scale-factor=1"):  # fmt: skip
            options.add_argument(arg)
        driver = webdriver.Chrome(
            options=options, service=Service(executable_path=shutil.which("chromedriver"))
        )
        try:
            driver.get(url)
            driver.execute_script("sessionStorage.setItem('bandit-dashboard-token', arguments[0])",
                                  TOKEN)  # fmt: skip
            driver.get(url + "#trips")
            WebDriverWait(driver, 20).until(
                lambda d: (
                    d.find_elements("css selector", "#rate-chart canvas")
                    and d.find_elements("css selector", 'tr[data-arm="paris"]')
                )
            )
            time.sleep(2.5)
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            extra = int(driver.execute_script("return window.outerHeight - window.innerHeight"))
            driver.set_window_size(1400, height + extra)
            time.sleep(2.5)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
            print(f"wrote {args.out} ({height} px high)")
        finally:
            driver.quit()
        stop.set()
        worker.join()
    finally:
        stop_server(server, engine, 1.0)


if __name__ == "__main__":
    main()
