"""singan.guards on its own, in this process: the checks before work starts (a writable folder,
free disk space), one writer per folder, the temporaries a kill leaves, and the handling of
Ctrl-C and SIGTERM (held back during a save; the first request recorded, the second acted on
at once), with real signals sent to this process under handlers the tests install."""
import errno
import os
import signal
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from conftest import temporaries_made
from singan import guards
from singan.errors import SinGANError
from singan.guards import (StopRequests, Terminated, check_free_space, check_writable,
                           exclusive, interrupts_deferred, nearest_existing, raise_on_sigterm,
                           remove_temporaries, sigterm_received, stop_requests)


# ---- before work starts -------------------------------------------------------------------------

def test_nearest_existing_is_the_path_or_its_closest_existing_ancestor(tmp_path):
    assert nearest_existing(tmp_path) == tmp_path
    assert nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path
    (tmp_path / "a").mkdir()
    assert nearest_existing(tmp_path / "a" / "b") == tmp_path / "a"
    assert nearest_existing("relative/never/made").is_absolute()


def test_check_writable_leaves_nothing_behind_and_refuses_a_file(tmp_path):
    check_writable(tmp_path / "new" / "folder")
    assert list(tmp_path.iterdir()) == []                  # the probe was removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinGANError) as err:
        check_writable(tmp_path / "file" / "sub", "model folder")
    message = str(err.value)
    assert message.startswith("cannot create the model folder ") and "is a file" in message
    assert str(tmp_path / "file") in message


def test_check_writable_names_an_unwritable_folder(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(guards.tempfile, "mkstemp", refuse)
    with pytest.raises(SinGANError, match="cannot write") as err:
        check_writable(tmp_path / "models")
    assert "models" in str(err.value)


Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize("free, needed, refused", [(10_000_000, 9_999_999, False),
                                                   (10_000_000, 10_000_000, False),
                                                   (10_000_000, 10_000_001, True)])
def test_check_free_space_refuses_only_what_does_not_fit(tmp_path, monkeypatch, free, needed,
                                                         refused):
    seen = []

    def usage(path):
        seen.append(Path(path))
        return Usage(10 ** 12, 0, free)
    monkeypatch.setattr(guards.shutil, "disk_usage", usage)
    if refused:
        with pytest.raises(SinGANError) as err:
            check_free_space(tmp_path / "m", needed)
        assert str(err.value) == (f"not enough free disk space for {tmp_path / 'm'}: the model "
                                  "needs about 10.0 MB, 10.0 MB free; free some space or train "
                                  "somewhere else")
    else:
        check_free_space(tmp_path / "m", needed)
    assert seen == [tmp_path]                              # asked where it would be made


def test_check_free_space_says_nothing_when_it_cannot_tell(tmp_path, monkeypatch):
    def broken(path):
        raise OSError("no statfs here")
    monkeypatch.setattr(guards.shutil, "disk_usage", broken)
    check_free_space(tmp_path, 10 ** 15)


# ---- one writer, no stale temporaries -----------------------------------------------------------

def test_exclusive_refuses_a_second_holder_until_the_first_lets_go(tmp_path):
    with exclusive(tmp_path):
        with pytest.raises(SinGANError, match="being written by another run right now"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):                              # free again
        pass


def test_exclusive_releases_the_folder_when_its_block_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with exclusive(tmp_path):
            raise RuntimeError("the training failed")
    with exclusive(tmp_path):
        pass


def test_remove_temporaries_takes_only_temporaries_in_the_folder_and_its_subfolders(tmp_path):
    for name in (".model.pth.abc.tmp", "0/.netG.pth.x1.tmp", "1/.z_opt.pth.y.tmp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"half")
    kept = ["model.pth", "0/netG.pth", "notes.tmp", "0/deep/.a.tmp"]
    for name in kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert remove_temporaries(tmp_path) == 3
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) \
        == sorted(kept)


# ---- Ctrl-C and SIGTERM -------------------------------------------------------------------------

@pytest.fixture
def recorded_signals():
    """SIGINT and SIGTERM recorded (not acted on) by this process's handlers for the test;
    the earlier handlers back afterwards."""
    got = []
    saved = {s: signal.signal(s, lambda signum, frame: got.append(signum))
             for s in (signal.SIGINT, signal.SIGTERM)}
    yield got
    for s, handler in saved.items():
        signal.signal(s, handler)


def send(signum):
    """A signal to this process, handled before the next line runs."""
    os.kill(os.getpid(), signum)


def test_the_first_stop_request_is_recorded_the_second_acts_at_once(recorded_signals):
    with stop_requests() as stops:
        assert stops.signum is None and not stops.terminated
        send(signal.SIGINT)
        assert stops.signum == signal.SIGINT and recorded_signals == []
        send(signal.SIGINT)                                # the second: the old handler, now
        assert recorded_signals == [signal.SIGINT]
    assert type(stops.interrupt()) is KeyboardInterrupt


def test_sigterm_is_a_stop_request_that_says_terminated(recorded_signals):
    with stop_requests() as stops:
        send(signal.SIGTERM)
        assert stops.signum == signal.SIGTERM and stops.terminated
        assert isinstance(stops.interrupt(), Terminated)
        send(signal.SIGINT)                                # a second request of another kind
    assert recorded_signals == [signal.SIGINT]


def test_stop_requests_put_the_handlers_back(recorded_signals):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_requests():
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_requests_outside_the_main_thread_just_run():
    seen = []

    def elsewhere():
        with stop_requests() as stops:
            seen.append(stops)
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert isinstance(seen[0], StopRequests) and seen[0].signum is None


def test_interrupts_during_a_save_wait_for_it_then_act_once(recorded_signals):
    steps = []
    with interrupts_deferred():
        send(signal.SIGINT)
        steps.append("written")
        send(signal.SIGINT)                                # twice: acted on once
        steps.append("renamed")
        assert recorded_signals == []
    assert steps == ["written", "renamed"] and recorded_signals == [signal.SIGINT]


def test_a_deferred_ctrl_c_raises_keyboard_interrupt_under_the_default_handler():
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                send(signal.SIGINT)
                finished = True
        assert finished
    finally:
        signal.signal(signal.SIGINT, saved)


def test_a_deferred_signal_with_the_default_action_is_sent_again(monkeypatch):
    sent = []
    monkeypatch.setattr(guards.os, "kill", lambda pid, signum: sent.append((pid, signum)))
    guards._act_on(signal.SIGTERM, signal.SIG_DFL)
    guards._act_on(signal.SIGTERM, signal.SIG_IGN)         # ignored stays ignored
    assert sent == [(os.getpid(), signal.SIGTERM)]


def test_raise_on_sigterm_raises_terminated_and_remembers_it():
    saved = signal.getsignal(signal.SIGTERM)
    try:
        raise_on_sigterm()
        with pytest.raises(Terminated):
            send(signal.SIGTERM)
        assert sigterm_received()
        assert issubclass(Terminated, KeyboardInterrupt)   # Ctrl-C's handling applies
    finally:
        signal.signal(signal.SIGTERM, saved)
        guards._sigterm.clear()


# ---- edges, each from a fact stated here --------------------------------------------------------

def test_nearest_existing_stops_at_the_root():
    assert nearest_existing("/no-such-folder-singan/a/b") == Path("/")


def test_the_write_probe_is_a_temporary_that_remove_temporaries_takes(tmp_path, monkeypatch):
    """A kill between the probe's creation and its removal leaves it behind: it must look like
    the temporaries a later run sweeps (".<name>.*.tmp" in the folder)."""
    made = temporaries_made(monkeypatch, guards)
    monkeypatch.setattr(guards.os, "unlink", lambda path: None)       # "killed" before this
    check_writable(tmp_path / "models")
    (probe,) = made
    assert probe.parent == tmp_path and probe.exists()
    monkeypatch.undo()                                     # os.unlink works again
    assert remove_temporaries(tmp_path) == 1 and not probe.exists()


def test_a_directory_named_like_a_temporary_is_left_alone(tmp_path):
    (tmp_path / ".odd.tmp").mkdir()
    (tmp_path / ".x.pth.1.tmp").write_bytes(b"half")
    assert remove_temporaries(tmp_path) == 1
    assert (tmp_path / ".odd.tmp").is_dir()


@pytest.mark.parametrize("code", [errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK])
def test_exclusive_reports_a_lock_held_elsewhere(tmp_path, monkeypatch, code):
    import fcntl

    def held(fd, how):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(fcntl, "flock", held)
    with pytest.raises(SinGANError) as err:
        with exclusive(tmp_path):
            pytest.fail("ran while another run held the folder")
    assert str(err.value) == (f"{tmp_path} is being written by another run right now; wait "
                              "for it to finish (or stop it), then run this again")


def test_exclusive_runs_unlocked_where_the_file_system_refuses_locks(tmp_path, monkeypatch):
    import fcntl
    calls = []

    def refused(fd, how):
        calls.append(how)
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", refused)
    ran = []
    with exclusive(tmp_path):
        ran.append(True)
    assert ran == [True] and calls == [fcntl.LOCK_EX | fcntl.LOCK_NB]


def test_exclusive_runs_unlocked_where_there_is_no_fcntl(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "fcntl", None)          # import fcntl: ImportError
    ran = []
    with exclusive(tmp_path / "not even a folder"):
        ran.append(True)
    assert ran == [True]


def test_exclusive_closes_its_descriptor(tmp_path, monkeypatch):
    closed = []
    real_close = guards.os.close
    monkeypatch.setattr(guards.os, "close", lambda fd: (closed.append(fd), real_close(fd)))
    with exclusive(tmp_path):
        assert closed == []
    assert len(closed) == 1


def test_deferred_signals_act_once_each_in_the_order_they_came(recorded_signals):
    with interrupts_deferred():
        send(signal.SIGTERM)
        send(signal.SIGINT)
        send(signal.SIGTERM)
    assert recorded_signals == [signal.SIGTERM, signal.SIGINT]


def test_a_deferred_signal_goes_to_a_python_handler_with_its_number():
    got = []
    guards._act_on(signal.SIGTERM, lambda signum, frame: got.append((signum, frame)))
    assert got == [(signal.SIGTERM, None)]


def test_the_second_request_puts_every_earlier_handler_back(recorded_signals):
    with stop_requests():
        send(signal.SIGTERM)
        send(signal.SIGINT)                                # acts: both handlers restored
        send(signal.SIGTERM)                               # now goes straight to the old one
        assert recorded_signals == [signal.SIGINT, signal.SIGTERM]


def errors_in_another_thread(function) -> list:
    """What `function` raised when called in a thread of its own (signal.signal refuses
    threads other than the main one): [] when it raised nothing."""
    errors = []

    def elsewhere():
        try:
            function()
        except Exception as err:
            errors.append(err)
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    return errors


def test_raise_on_sigterm_outside_the_main_thread_does_nothing():
    before = signal.getsignal(signal.SIGTERM)
    assert errors_in_another_thread(raise_on_sigterm) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_deferring_outside_the_main_thread_just_runs():
    seen = []

    def elsewhere():
        with interrupts_deferred():
            seen.append("ran")
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == ["ran"]


def test_an_ignored_signal_stays_ignored_and_a_default_one_is_sent(monkeypatch):
    sent = []
    monkeypatch.setattr(guards.os, "kill", lambda pid, signum: sent.append((pid, signum)))
    guards._act_on(signal.SIGINT, signal.SIG_IGN)
    assert sent == []
    guards._act_on(signal.SIGINT, signal.SIG_DFL)
    assert sent == [(os.getpid(), signal.SIGINT)]


def test_the_free_space_message_gives_megabytes_to_one_decimal(tmp_path, monkeypatch):
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda path: Usage(10 ** 12, 0, 1_050_001))
    with pytest.raises(SinGANError) as err:
        check_free_space(tmp_path, 2_349_999)
    assert "needs about 2.3 MB, 1.1 MB free" in str(err.value)


def test_raise_on_sigterm_installs_its_handler_in_the_main_thread_only():
    saved = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        raise_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is guards._raise_terminated
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert errors_in_another_thread(raise_on_sigterm) == []
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_check_writable_names_the_output_folder_by_default(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinGANError) as err:
        check_writable(tmp_path / "file" / "out")
    assert str(err.value) == (f"cannot create the output folder {tmp_path / 'file' / 'out'}: "
                              f"{tmp_path / 'file'} is a file, not a folder")
