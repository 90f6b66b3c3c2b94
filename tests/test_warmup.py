"""The warm-up compiles what serving runs: after ``create_server``, Recommend,
Feedback, window closing and snapshots compile no kernel anymore."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    from numba.core.registry import CPUDispatcher
    from bandit_engine import kernels

    def compiled():
        return {
            n: len(getattr(kernels, n).signatures)
            for n in dir(kernels)
            if isinstance(getattr(kernels, n), CPUDispatcher)
        }

    before = compiled()
    from bandit_engine.server import ServerSettings, create_server
    server, port, engine = create_server(ServerSettings(port=0, state_dir=None))
    after_start = compiled()

    # what a server then does, with other shapes than the warm-up's
    from bandit_engine.core.config import ExperimentConfig
    from bandit_engine.core.engine import Context
    from bandit_engine.policies import POLICIES
    ctx = Context(dense=[0.1 * i for i in range(12)], numeric={"n": 3.0}, categorical=["x=y"])
    for kind in sorted(POLICIES):
        engine.create_experiment(
            ExperimentConfig(kind, policy=kind, dim=33, dense_dim=12, reward_window_s=1.0)
        )
        engine.add_arms(kind, [(f"a{i}", {"categorical": [f"c={i % 3}"]}) for i in range(40)])
        for i in range(5):
            d = engine.recommend(kind, ctx, k=10)
            engine.feedback(d.event_id, d.arm_ids[1], 1.0)
        engine.arm_info(kind, "a1", ctx)
    engine.flush()
    engine.sweep(engine.clock() + 5.0)
    engine.checkpoint()
    after_serving = compiled()
    server.stop(0)
    engine.close()
    print(json.dumps([before, after_start, after_serving]))
    """
)


def test_serving_compiles_nothing_after_create_server() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=True
    )
    before, after_start, after_serving = json.loads(out.stdout.strip().splitlines()[-1])
    assert sum(before.values()) == 0  # nothing compiled at import
    assert sum(after_start.values()) >= 10  # the warm-up compiled (or loaded) the kernels
    grew = {n: (after_start[n], c) for n, c in after_serving.items() if c > after_start[n]}
    assert not grew, f"kernels compiled while serving: {grew}"
