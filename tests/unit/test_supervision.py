"""When a local run restarts a crashed service: at once, then backing off, then afresh."""

from __future__ import annotations

from deploy.local.supervision import RestartPolicy, Watch

POLICY = RestartPolicy(first_s=0.5, max_s=30.0, stable_s=60.0)


def test_delays_double_up_to_the_ceiling():
    assert [POLICY.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_crashes_in_a_row_back_off_and_a_stable_run_starts_over():
    watch = Watch(started_at=0.0)
    assert watch.crashed(5.0, POLICY) == 0.5  # first crash: almost at once
    assert not watch.due(5.4) and watch.due(5.5)
    watch.restarted(5.5)
    assert watch.crashed(6.0, POLICY) == 1.0  # crashed again soon after: wait longer
    watch.restarted(7.0)
    assert watch.crashed(8.0, POLICY) == 2.0
    watch.restarted(10.0)
    # Up for a minute, then a crash: back to the first delay.
    assert watch.crashed(70.0, POLICY) == 0.5 and watch.failures == 1
    watch.restarted(70.5)
    assert watch.restart_at is None and not watch.due(1000.0)
