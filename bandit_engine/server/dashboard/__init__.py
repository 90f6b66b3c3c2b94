"""The web dashboard of ``serve --http-port`` (``docs/dashboard.md``):
experiments, arms with posterior means and intervals, the reward rate over
time, challengers with their estimates and intervals, the change history,
and promotion and rollback for admin tokens. A Starlette application served
by uvicorn; the page draws its charts with uPlot, vendored under
``static/vendor``."""

from bandit_engine.server.dashboard.api import build_app
from bandit_engine.server.dashboard.rates import RateHistory
from bandit_engine.server.dashboard.server import Dashboard

__all__ = ["Dashboard", "RateHistory", "build_app"]
