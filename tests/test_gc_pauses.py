"""The garbage collector's pauses: timed per generation, bucketed, exported
by /metrics; the start-up heap frozen out of later full collections."""

from __future__ import annotations

import gc
from pathlib import Path

from serverutil import start_server
from test_metrics import scrape

from bandit_engine.server.gc_pauses import BUCKETS, GcPauses, freeze_heap


def test_every_collection_is_timed_in_its_generation_until_uninstalled() -> None:
    pauses = GcPauses().install()
    try:
        before = pauses.snapshot()
        for _ in range(3):
            gc.collect(2)
        gc.collect(1)
        after = pauses.snapshot()
        assert after[2].count - before[2].count == 3
        assert after[1].count - before[1].count >= 1
        for g in after:
            assert sum(g.buckets) == g.count and len(g.buckets) == len(BUCKETS) + 1
            assert g.seconds >= g.max_seconds >= 0.0
        assert after[2].max_seconds > 0.0
    finally:
        pauses.uninstall()
    counted = pauses.snapshot()[2].count
    gc.collect(2)
    assert pauses.snapshot()[2].count == counted
    assert pauses.install() is pauses and pauses.install() is pauses  # once only
    try:
        gc.collect(2)
        assert pauses.snapshot()[2].count == counted + 1
    finally:
        pauses.uninstall()


def test_freeze_heap_takes_the_live_objects_out_of_the_generations() -> None:
    keep = [[i] for i in range(200_000)]  # long-lived containers, as after start-up
    try:
        frozen = freeze_heap()
        assert frozen == gc.get_freeze_count() >= len(keep)
        assert len(gc.get_objects(generation=2)) < len(keep)  # a full collection skips them
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_metrics_export_the_pauses_as_a_histogram(tmp_path: Path) -> None:
    r = start_server(tmp_path, metrics_port=0)
    try:
        port = r.server.metrics.port
        before = scrape(port)
        gc.collect(2)
        after = scrape(port)
        key = 'bandit_gc_pause_seconds_count{generation="2"}'
        assert after[key] >= before.get(key, 0.0) + 1
        inf = 'bandit_gc_pause_seconds_bucket{generation="2",le="+Inf"}'
        assert after[inf] == after[key]
        assert after['bandit_gc_pause_seconds_sum{generation="2"}'] > 0.0
        assert after['bandit_gc_pause_max_seconds{generation="2"}'] > 0.0
        assert after["bandit_gc_frozen_objects"] == gc.get_freeze_count()
    finally:
        r.stop()
