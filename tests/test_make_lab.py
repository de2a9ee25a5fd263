"""`make lab` opens at the URL it prints, with a token no other user can read, or says why not."""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab import free_port

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab/tree/00_start_here\.ipynb\?token=([0-9a-f]+)")


def start_lab(port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    return subprocess.Popen(["make", "--no-print-directory", "lab", f"PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def printed_url(proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if URL.search(line):
            return URL.search(line).group(0)
        if not line and proc.poll() is not None:
            break
    pytest.fail("make lab printed no URL: " + proc.stderr.read()[-2000:])


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for(url: str, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return status(url)
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.5)
    pytest.fail(f"nothing answered at {url}")


def command_lines_of_group(pgid: int) -> list:
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == pgid:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ProcessLookupError):
            continue
    return lines


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_the_printed_url_opens_and_the_token_is_on_no_command_line():
    port = free_port()
    proc = start_lab(port)
    try:
        url = printed_url(proc)
        assert URL.search(url).group(1) == str(port)
        token = URL.search(url).group(2)
        assert len(token) >= 32
        assert wait_for(url) == 200
        assert status(f"http://127.0.0.1:{port}/api/status") == 403          # no token, no entry
        assert status(f"http://127.0.0.1:{port}/api/status?token={token}") == 200
        lines = command_lines_of_group(os.getpgid(proc.pid))
        assert any("jupyterlab" in line for line in lines)
        assert not [line for line in lines if token in line]
    finally:
        stop(proc)


def test_a_busy_port_fails_loudly_and_prints_no_url():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_lab(port)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            stop(proc)
    assert proc.returncode != 0
    assert f"port {port}" in err and "busy" in err
    assert not URL.search(out)
