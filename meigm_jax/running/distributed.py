"""Multi-process runs: ``distributed=true`` joins this process to the others.

Where ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` are set, they are handed to ``jax.distributed.initialize``
(all three, or none); otherwise JAX detects the cluster itself (SLURM and
the others it knows). On CPU, the processes exchange data through gloo.
Joining waits at most ``distributed_timeout`` seconds for every process: a
missing process or a wrong count ends in one line, never a hang. With the
variables set, the processes first meet at the coordinator's port in a
small handshake of their own (``rendezvous``): JAX's coordination client
aborts the whole process, with a C++ stack dump, when peers are missing.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Mapping

from meigm_jax.errors import ConfigError, DistributedError

VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def from_environment(environ: Mapping[str, str] = os.environ) -> dict:
    """``jax.distributed.initialize`` arguments from the documented variables
    ({} when none is set: the cluster is detected); ConfigError when only some
    are set or the numbers cannot be a run's."""
    given = {name: environ[name] for name in VARIABLES if environ.get(name)}
    if not given:
        return {}
    missing = [name for name in VARIABLES if name not in given]
    if missing:
        raise ConfigError(f"config error: distributed=true with {', '.join(given)} set but not "
                          f"{', '.join(missing)}; allowed: all of {', '.join(VARIABLES)}, or none "
                          "(a cluster JAX detects, such as SLURM)")
    count, index = given["JAX_NUM_PROCESSES"], given["JAX_PROCESS_ID"]
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"config error: JAX_NUM_PROCESSES={count!r} is not allowed; allowed: an integer >= 1")
    if not index.isdigit() or int(index) >= int(count):
        raise ConfigError(f"config error: JAX_PROCESS_ID={index!r} is not allowed; allowed: an integer "
                          f"from 0 to {int(count) - 1} (JAX_NUM_PROCESSES={count})")
    return dict(coordinator_address=given["JAX_COORDINATOR_ADDRESS"], num_processes=int(count),
                process_id=int(index))


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"config error: JAX_COORDINATOR_ADDRESS={address!r} is not allowed; "
                          "allowed: HOST:PORT")
    return host.strip("[]"), int(port)


def rendezvous(address: str, count: int, index: int, timeout_s: float) -> None:
    """Wait until all ``count`` processes are up and agree on ``count``.

    Process 0 listens at the coordinator's port; every other process
    connects, says its index and count, and waits for "go". Either side
    gives up with a DistributedError line when ``timeout_s`` passes. The
    port is free again afterwards, for JAX's coordinator.
    """
    if count == 1:
        return
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout_s
    fail = lambda why: DistributedError(f"error: distributed=true could not join {count} processes at "
                                        f"{address} within {timeout_s:g} s (distributed_timeout): {why}")
    if index == 0:
        peers: dict[int, socket.socket] = {}
        with socket.create_server(("", port), reuse_port=hasattr(socket, "SO_REUSEPORT")) as server:
            while len(peers) < count - 1:
                server.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    conn, _ = server.accept()
                    conn.settimeout(max(deadline - time.monotonic(), 0.01))
                    their_index, their_count = (int(x) for x in conn.recv(64).decode().split())
                except (TimeoutError, socket.timeout):
                    absent = sorted(set(range(1, count)) - set(peers))
                    raise fail(f"process(es) {', '.join(map(str, absent))} never came") from None
                except (OSError, ValueError):
                    continue  # not one of ours
                if their_count != count:
                    conn.sendall(b"count %d\n" % count)
                    raise fail(f"process {their_index} has JAX_NUM_PROCESSES={their_count}")
                peers[their_index] = conn
            for conn in peers.values():
                conn.sendall(b"go\n")
            for conn in peers.values():  # the peers close first: the port is not left in TIME_WAIT here
                conn.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    conn.recv(8)
                except OSError:
                    pass
                conn.close()
        return
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.01))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise fail("process 0 never answered") from None
            time.sleep(0.2)
    with conn:
        conn.sendall(b"%d %d\n" % (index, count))
        conn.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            answer = conn.recv(64).decode().split()
        except OSError:
            answer = []
    if answer[:1] != ["go"]:
        why = (f"process 0 has JAX_NUM_PROCESSES={answer[1]}" if answer[:1] == ["count"]
               else "process 0 did not see every process")
        raise fail(why)


def initialize(timeout_s: int, environ: Mapping[str, str] = os.environ) -> None:
    """Join the run's processes (``jax.distributed.initialize``)."""
    import jax

    kwargs = from_environment(environ)
    if kwargs:
        rendezvous(kwargs["coordinator_address"], kwargs["num_processes"], kwargs["process_id"], timeout_s)
    # CPU devices of different processes talk through gloo (no effect on
    # accelerators; asking which backend runs would start it too early).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=timeout_s)
    except Exception as exc:  # the coordinator's errors are long and multi-line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = (f"{kwargs['num_processes']} processes at {kwargs['coordinator_address']}" if kwargs
                 else "the processes of the detected cluster")
        raise DistributedError(f"error: distributed=true could not join {where} within "
                               f"{timeout_s} s (distributed_timeout): {first[:300]}") from exc
