"""Turns on the processor: light steps share it, a heavy run has it alone."""

import threading
import time

import pytest

from vidsense.services.perception.turns import Turns, light_threads


def test_light_steps_run_together():
    turns = Turns()
    both_inside = threading.Barrier(2, timeout=5)

    def step():
        with turns.light():
            both_inside.wait()  # raises BrokenBarrierError if the other step cannot enter

    threads = [threading.Thread(target=step) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not both_inside.broken


def test_a_heavy_run_waits_for_the_light_steps_in_flight_and_new_ones_wait_for_it():
    turns = Turns()
    events: list[str] = []
    light_in = threading.Event()
    release_light = threading.Event()

    def first_light():
        with turns.light():
            events.append("light 1 in")
            light_in.set()
            release_light.wait(5)
            events.append("light 1 out")

    def heavy():
        with turns.heavy():
            events.append("heavy in")
            time.sleep(0.05)
            events.append("heavy out")

    def second_light():
        with turns.light():
            events.append("light 2 in")

    a = threading.Thread(target=first_light)
    a.start()
    assert light_in.wait(5)
    h = threading.Thread(target=heavy)
    h.start()
    while not turns._waiting:  # the heavy run is queued behind the light step
        time.sleep(0.001)
    b = threading.Thread(target=second_light)
    b.start()
    time.sleep(0.05)
    assert events == ["light 1 in"], "neither the heavy run nor a new light step may start yet"
    release_light.set()
    for t in (a, h, b):
        t.join(5)
    assert events == ["light 1 in", "light 1 out", "heavy in", "heavy out", "light 2 in"]


def test_waits_are_counted_per_thread():
    turns = Turns()
    assert turns.waited() == 0.0
    with turns.light():
        pass
    assert turns.waited() < 0.01

    started = threading.Event()

    def hold():
        with turns.heavy():
            started.set()
            time.sleep(0.2)

    t = threading.Thread(target=hold)
    t.start()
    assert started.wait(5)
    before = turns.waited()
    with turns.light():
        pass
    t.join(5)
    assert turns.waited() - before == pytest.approx(0.2, abs=0.15)


def test_light_threads_share_the_cores_among_the_lanes():
    assert light_threads(1, cores=2) is None  # one model at a time: every runtime keeps its default
    assert light_threads(2, cores=2) == 1
    assert light_threads(2, cores=8) == 4
    assert light_threads(3, cores=2) == 1  # never below one thread
