"""The critic app refuses a port another process holds, after giving a previous job's proxy time to let go."""

import socket
import threading

import pytest

from ipo_ray.critic.serve.launch import _check_port_free


def _held_port(reuse_address: bool = False) -> socket.socket:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_port_held_past_the_wait_is_refused_naming_it() -> None:
    with _held_port() as holder:
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"serve.port {port} on 127.0.0.1 is taken"):
            _check_port_free("127.0.0.1", port, wait_s=0.5)


def test_a_port_released_within_the_wait_is_used() -> None:
    holder = _held_port()
    port = holder.getsockname()[1]
    threading.Timer(1.0, holder.close).start()
    _check_port_free("127.0.0.1", port, wait_s=10.0)  # returns once the holder is gone


def test_connections_a_dead_proxy_left_behind_do_not_hold_the_port() -> None:
    listener = _held_port(reuse_address=True)  # as Serve's proxy binds
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT on the port
    listener.close()
    client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the probe saw before: "taken" for a minute
    _check_port_free("127.0.0.1", port, wait_s=0.0)
