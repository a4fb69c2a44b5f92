"""The local Ray runtime of a folder run keeps to this machine: while main_train.py --input_dir
trains, every TCP socket that listens in one of its processes (the script, the GCS, the raylet,
the agents, the workers: all descendants of the script) is bound to a loopback address, as
read from /proc/net/tcp and /proc/net/tcp6; the runtime requires a token that it got from
its environment, and wrote it nowhere (no ~/.ray/auth_token, nothing in its session folder).
"""
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, ctrl_c_as_in_a_terminal, optional, smooth_image, write_image

if not Path("/proc/net/tcp").exists():
    pytest.skip("needs Linux's /proc", allow_module_level=True)
if __import__("importlib").util.find_spec("ray") is None:
    optional("ray")   # skipped here, an error in CI

MODEL = "scale_factor=0.750000,alpha=10"
RUNNING_NAME = "running_stage.pth"   # singan.checkpoint.RUNNING_NAME (singan is not imported here)
LISTEN = "0A"          # the TCP state LISTEN in /proc/net/tcp


def children() -> dict:
    """{pid: parent pid} of every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def descendants(root: int) -> set:
    """root and every process below it."""
    parents, found = children(), {root}
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    return inodes


def address(hex_address: str) -> ipaddress._BaseAddress:
    """/proc/net/tcp's local address ("0100007F:1F90"; tcp6: four little-endian words)."""
    host = bytes.fromhex(hex_address.split(":")[0])
    words = b"".join(host[i:i + 4][::-1] for i in range(0, len(host), 4))
    ip = ipaddress.ip_address(words)
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def listening() -> dict:
    """{socket inode: (local address, port)} of every TCP socket that listens."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                found[fields[9]] = (address(fields[1]), int(fields[1].split(":")[1], 16))
    return found


def environment(pid: int) -> dict:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode(errors="replace").split("=", 1) for pair in pairs if b"=" in pair)


def contents(path: Path) -> bytes:
    """A file's bytes (b"" for anything else, or a file gone meanwhile)."""
    try:
        return path.read_bytes() if path.is_file() else b""
    except OSError:
        return b""


def command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


@pytest.mark.slow
def test_a_folder_runs_local_runtime_listens_on_loopback_only_with_a_token(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", smooth_image(32, 32))
    home = tmp_path / "home"          # where Ray would write ~/.ray/auth_token
    home.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HOME=str(home))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ADDRESS"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main_train.py"), "--input_dir", "imgs", "--max_size", "32",
         "--min_size", "24", "--niter", "5000", "--manualSeed", "1", "--num_cpus", "1",
         "--num_samples", "0", "--quiet", "--checkpoint_minutes", "0.01"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        # the task is training once the driver holds its first save of the running stage
        config = tmp_path / "TrainedModels" / "a" / MODEL / RUNNING_NAME
        deadline = time.monotonic() + 180
        while not config.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert config.exists(), "the training did not start"
        time.sleep(2)                 # the agents' servers are up by now
        pids = descendants(proc.pid)
        sockets = listening()
        bound = {}                    # pid -> [(address, port)] of its listening sockets
        for pid in pids:
            for inode in socket_inodes(pid):
                if inode in sockets:
                    bound.setdefault(pid, []).append(sockets[inode])
        programs = {pid: command(pid) for pid in bound}
        assert any("gcs_server" in text for text in programs.values()), programs
        assert any("raylet" in text for text in programs.values()), programs
        assert sum(len(v) for v in bound.values()) >= 4, bound
        outside = {programs[pid][:80]: [f"{ip}:{port}" for ip, port in addresses
                                        if not ip.is_loopback]
                   for pid, addresses in bound.items()}
        assert not any(outside.values()), outside

        gcs = next(pid for pid, text in programs.items() if "gcs_server" in text)
        gcs_env = environment(gcs)
        assert gcs_env.get("RAY_AUTH_MODE") == "token"
        assert re.fullmatch(r"[0-9a-f]{64}", gcs_env.get("RAY_AUTH_TOKEN", ""))
        assert not (home / ".ray" / "auth_token").exists()
        session = re.search(r"--session-dir=(\S+)", programs[gcs]).group(1)
        written = [str(path) for path in Path(session).rglob("*")
                   if gcs_env["RAY_AUTH_TOKEN"].encode() in contents(path)]
        assert not written, written   # the token is in the environment only
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
