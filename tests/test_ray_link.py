"""A Ray task's side of a folder run (singan.cluster.ray_runner.Link) keeps to its CPU reservation:
it never calls ray.get or ray.wait, which tell Ray the task is blocked and hand its CPUs to
the next task while it goes on training (on Ray 2.60, ray.wait(timeout=0) polled every 0.2 s
ran two 1-CPU trainings at once on a 1-CPU runtime). The Board's answers are taken through
ObjectRef.future(). Here a fake Ray whose get and wait fail, and a fake Board whose answers
are concurrent.futures.Futures the test completes, stand in for the real ones."""
import concurrent.futures
import sys
import types

import pytest

from singan.cluster import ray_runner


class Ref:
    """An ObjectRef as far as Link uses it: future() gives the answer's Future."""
    def __init__(self, future):
        self._future = future

    def future(self):
        return self._future


class Method:
    def __init__(self):
        self.calls, self.futures = [], []

    def remote(self, *args):
        self.calls.append(args)
        self.futures.append(concurrent.futures.Future())
        return Ref(self.futures[-1])


class Board:
    def __init__(self):
        self.stopped, self.status, self.log, self.files = Method(), Method(), Method(), Method()


@pytest.fixture
def link(monkeypatch):
    def blocked(*args, **kwargs):
        raise AssertionError("a task called ray.get or ray.wait: Ray would give its CPUs away")
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get=blocked, wait=blocked))
    monkeypatch.setattr(ray_runner, "STOP_POLL_SECONDS", 0.0)
    board = Board()
    return ray_runner.Link(ray_runner.Channel(board, "t1", (("model", "m1"),))), board


def test_should_stop_asks_once_and_takes_the_answer_when_it_has_come(link):
    link, board = link
    assert link.should_stop() is False          # asked; no answer yet
    assert link.should_stop() is False          # still none: not asked again
    assert len(board.stopped.calls) == 1
    board.stopped.futures[0].set_result(True)
    assert link.should_stop() is True
    assert link.should_stop() is True           # a stop is final: no more questions
    assert len(board.stopped.calls) == 1


def test_a_false_answer_is_followed_by_a_new_question(link):
    link, board = link
    link.should_stop()
    board.stopped.futures[0].set_result(False)
    assert link.should_stop() is False
    assert link.should_stop() is False
    assert len(board.stopped.calls) == 2


def test_stopped_before_start_waits_for_the_answer_then_gives_up(link):
    link, board = link
    assert link.stopped_before_start(seconds=0.01) is False     # no answer within the wait
    board.stopped.futures[0].set_result(True)
    assert link.stopped_before_start(seconds=0.01) is True      # the same question's answer
    assert len(board.stopped.calls) == 1


def test_flush_waits_for_the_last_batch_through_its_future(link):
    link, board = link
    link.send("model", [("a.pth", b"x")])
    link.send("model", [("b.pth", b"y")])
    assert [call[0] for call in board.files.calls] == ["m1", "m1"]
    board.files.futures[1].set_result(None)
    link.flush()                                # returns: the last batch has arrived
    link.flush()                                # nothing left to wait for
    with pytest.raises(ray_runner.SinGANError, match="no 'samples' folder"):
        link.send("samples", [("0.png", b"z")])
