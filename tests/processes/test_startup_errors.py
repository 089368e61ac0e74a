"""What stops ``python -m chatstore`` is said in one line, with an exit status per kind of failure.

Each case runs the real command in a fresh process, in a folder of its own, so that a database file it
should not have made would show.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chatstore.__main__ import EXIT_BAD_SETTING, EXIT_CANNOT_LISTEN, EXIT_DATABASE
from tests.servers import free_port

TIMEOUT_S = 60


def run_chatstore(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m chatstore *args`` in ``tmp_path`` with ``env`` added; the database is
    ``tmp_path/data/app.db`` unless ``env`` names another."""
    environment = {
        **os.environ,
        "CHATSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'app.db'}",
        "CHATSTORE_LOG_LEVEL": "info",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "chatstore", *args],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line the command printed on stderr (nothing on stdout)."""
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def unreachable_postgres_url() -> str:
    return f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x"


BAD_SETTINGS = {
    "CHATSTORE_PORT": ("abc", "CHATSTORE_PORT must be a whole number, got 'abc'"),
    "CHATSTORE_MIGRATE": ("sometimes", "CHATSTORE_MIGRATE must be auto or off, got 'sometimes'"),
    "CHATSTORE_DATABASE_URL": ("nope", "CHATSTORE_DATABASE_URL is not a database URL: 'nope'"),
    "CHATSTORE_LOG_LEVEL": ("loud", "CHATSTORE_LOG_LEVEL must be one of critical, error, warning, info"),
    "CHATSTORE_MOCK_DELAY_MS": ("1.5", "CHATSTORE_MOCK_DELAY_MS must be a whole number, got '1.5'"),
}


@pytest.mark.parametrize("variable", sorted(BAD_SETTINGS))
def test_a_bad_setting_is_one_line_naming_it_and_exits_2(variable: str, tmp_path: Path) -> None:
    value, message = BAD_SETTINGS[variable]

    done = run_chatstore(tmp_path, **{variable: value})

    assert done.returncode == EXIT_BAD_SETTING == 2
    assert one_line(done).startswith(f"ERROR:    {message}")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["current", "upgrade", "history"])
def test_db_commands_say_a_bad_setting_in_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    done = run_chatstore(tmp_path, "db", command, CHATSTORE_MIGRATE="sometimes")

    assert done.returncode == EXIT_BAD_SETTING
    assert one_line(done) == "chatstore: CHATSTORE_MIGRATE must be auto or off, got 'sometimes'"


def test_an_unreachable_database_is_one_line_and_exits_3(tmp_path: Path) -> None:
    url = unreachable_postgres_url()

    done = run_chatstore(tmp_path, "--port", str(free_port()), CHATSTORE_DATABASE_URL=url)

    assert done.returncode == EXIT_DATABASE == 3
    hidden = url.replace(":secret@", ":***@")
    assert one_line(done) == f"ERROR:    cannot reach the database at {hidden}: connection refused"


def test_at_debug_level_the_traceback_follows_the_line(tmp_path: Path) -> None:
    done = run_chatstore(
        tmp_path, CHATSTORE_DATABASE_URL=unreachable_postgres_url(), CHATSTORE_LOG_LEVEL="debug"
    )

    assert done.returncode == EXIT_DATABASE
    assert "ERROR:    cannot reach the database at" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "ConnectionRefusedError" in done.stderr


def test_a_database_that_is_not_one_is_one_line_and_exits_3(tmp_path: Path) -> None:
    (tmp_path / "not-a.db").write_text("these are not the droids\n" * 100)

    done = run_chatstore(tmp_path, CHATSTORE_DATABASE_URL=f"sqlite:///{tmp_path / 'not-a.db'}")

    assert done.returncode == EXIT_DATABASE
    assert one_line(done) == (
        f"ERROR:    cannot use the database at sqlite:///{tmp_path / 'not-a.db'}: file is not a database"
    )


@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_db_commands_say_in_one_line_that_the_database_cannot_be_reached(
    command: str, tmp_path: Path
) -> None:
    url = unreachable_postgres_url()

    done = run_chatstore(tmp_path, "db", command, CHATSTORE_DATABASE_URL=url)

    assert done.returncode == EXIT_DATABASE
    hidden = url.replace(":secret@", ":***@")
    assert one_line(done) == f"chatstore: cannot reach the database at {hidden}: connection refused"


def test_with_upgrades_off_an_old_schema_is_one_line_and_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # chatstore's tables without a version table: a 0.1.0 database
        old.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY)")

    done = run_chatstore(tmp_path, CHATSTORE_DATABASE_URL=f"sqlite:///{path}", CHATSTORE_MIGRATE="off")

    assert done.returncode == EXIT_DATABASE
    line = one_line(done)
    assert line.startswith("ERROR:    the database is a chatstore 0.1.0 one")
    assert line.endswith("CHATSTORE_MIGRATE=off: run python -m chatstore db upgrade first")


def test_a_busy_port_is_found_before_the_database_is_opened(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_chatstore(tmp_path, "--port", str(port))

    assert done.returncode == EXIT_CANNOT_LISTEN == 4
    assert one_line(done) == (
        f"ERROR:    cannot listen on 127.0.0.1:{port}: the port is in use by another program "
        "(CHATSTORE_PORT, --port)"
    )
    assert not (tmp_path / "data").exists()  # neither the database nor its folder


def test_a_busy_port_is_reported_even_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_chatstore(tmp_path, "--port", str(port), CHATSTORE_DATABASE_URL=unreachable_postgres_url())

    assert done.returncode == EXIT_CANNOT_LISTEN
    assert "the port is in use" in one_line(done)


def test_an_address_not_of_this_machine_is_one_line_and_exits_4(tmp_path: Path) -> None:
    done = run_chatstore(tmp_path, "--host", "192.0.2.1", "--port", str(free_port()))

    assert done.returncode == EXIT_CANNOT_LISTEN
    assert "the address is not one of this machine's" in one_line(done)
    assert not (tmp_path / "data").exists()


@pytest.mark.server
@pytest.mark.parametrize("workers", [1, 2])
def test_it_serves_on_the_socket_it_bound_first(workers: int, tmp_path: Path) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "CHATSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'app.db'}",
        "CHATSTORE_LOG_LEVEL": "info",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatstore", "--port", str(port), "--workers", str(workers)],
            cwd=tmp_path,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        answered = wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert answered, log.read_text()
    finally:
        process.terminate()
        process.wait(30)
    # uvicorn ends on SIGTERM by raising it again once it has shut down (one process) or exits 0.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert f"chatstore listens on http://127.0.0.1:{port}" in log.read_text()
    assert "Traceback" not in log.read_text()


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> bool:
    """Whether ``url`` answered 200 before the process exited or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False
