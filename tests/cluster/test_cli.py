"""The `moor` CLI against a real cluster: every command's output and exit code.

Clusters are expensive, so each test drives a whole story through one cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

from moorage.localcluster.cluster import MOOR, LocalCluster
from moorage.localcluster.procs import free_port, wait_for
from moorage.manifest import ServiceManifest, load_paths, loading
from moorage.v1 import control_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import S, live, moor, one_running_per_slot, tasks, wait_tasks

WEB = """\
name: web
image: busybox
replicas: 2
env: {GREETING: ahoy}
command: ["sh", "-c", "echo \\"start $GREETING\\"; echo oops >&2; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
stop_grace_period: 1s
labels: {tier: front}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(dedent(text))
    return path


class Streaming:
    """A long-running `moor` command whose stdout lines are collected as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, *needles: str, timeout: float = 20) -> str:
        def found() -> str | None:
            return next((line for line in list(self.lines) if all(n in line for n in needles)), None)

        try:
            wait_for(lambda: found() is not None, timeout, f"a line with {needles}")
        except TimeoutError as err:
            raise AssertionError(f"{err}; got {self.lines}") from err
        line = found()
        assert line is not None
        return line


@contextmanager
def streaming(cluster: LocalCluster, *args: str) -> Iterator[Streaming]:
    process = subprocess.Popen(
        [MOOR, *args], env=cluster.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield Streaming(process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_apply_diff_get_describe_logs_scale_delete(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=2)
    web = write(tmp_path, "web.yaml", WEB)

    version = moor(cluster, "version").stdout
    assert "client: moor " in version and f"at {cluster.controller_address}, leader" in version

    # --dry-run writes nothing.
    assert moor(cluster, "apply", "-f", str(web), "--dry-run").stdout == "service/web created (dry run)\n"
    assert "web" not in moor(cluster, "get", "services").stdout

    applied = moor(cluster, "apply", "-f", str(web), "--wait")
    assert applied.stdout == "service/web created\nall replicas running\n"
    found = wait_tasks(cluster, "web", one_running_per_slot(2), "two web tasks running")
    assert moor(cluster, "apply", "-f", str(web)).stdout == "service/web unchanged\n"
    assert moor(cluster, "apply", "-f", str(web), "--dry-run").stdout == "service/web unchanged (dry run)\n"

    changed = write(tmp_path, "web2.yaml", WEB.replace("GREETING: ahoy", "GREETING: ahoy, EXTRA: '1'"))
    diff = moor(cluster, "diff", "-f", str(changed))
    assert diff.stdout == 'service/web updated\n  + env.EXTRA: "1"\n'
    assert moor(cluster, "diff", "-f", str(changed), "--exit-code", check=False).returncode == 1
    assert moor(cluster, "diff", "-f", str(web)).stdout == "service/web unchanged\n"

    services = moor(cluster, "get", "services", "-o", "wide").stdout.splitlines()
    assert services[0].split() == ["NAME", "IMAGE", "REPLICAS", "RUNNING", "PORTS", "UPDATE", "MESSAGE"]
    assert services[1].split()[:4] == ["web", "busybox", "2", "2"]
    listed = moor(cluster, "get", "tasks", "-o", "yaml").stdout
    assert all(f"id: {t.id}" in listed for t in found) and "observed_state: TASK_STATE_RUNNING" in listed
    nodes = moor(cluster, "get", "nodes", "-o", "json").stdout
    assert '"id": "h1"' in nodes and '"id": "h2"' in nodes

    described = moor(cluster, "describe", "service", "web").stdout
    assert "Replicas:  2 desired, 2 running" in described
    assert "GREETING: ahoy" in described and "tier: front" in described
    assert all(t.id in described for t in found)
    assert all(f"task started id={t.id} service=web node={t.node_id}" in described for t in found)  # recent events
    first = min(found, key=lambda t: t.slot)
    task_text = moor(cluster, "describe", "task", "web.1").stdout
    assert f"ID:         {first.id}" in task_text and "State:      running" in task_text
    assert f"web          {first.slot}" not in task_text  # the task view is fields, not a table
    other = next(t for t in found if t.id != first.id)
    assert f"task started id={first.id}" in task_text and other.id not in task_text.split("Events:")[1]
    node_text = moor(cluster, "describe", "node", first.node_id).stdout
    assert "State:         ready" in node_text and first.id in node_text
    assert f"task started id={first.id}" in node_text

    def logged() -> bool:
        out = moor(cluster, "logs", "web")
        return all(f"web.{t.slot}.{t.id} | start ahoy" in out.stdout for t in found) and "oops" in out.stderr

    wait_for(logged, 15, "both tasks' first line in `moor logs web`")
    one = moor(cluster, "logs", first.id[:6], "--timestamps")
    assert one.stdout.count(" | start ahoy") == 1 and one.stdout.startswith("20")
    assert f"web.{first.slot}.{first.id} | oops" in one.stderr
    assert moor(cluster, "logs", "web", "--since", "2099-01-01T00:00:00Z").stdout == ""

    with streaming(cluster, "logs", "web", "-f") as followed:
        followed.wait_for_line("| start ahoy")
        assert moor(cluster, "scale", "web=3").stdout == "service/web scaled to 3\n"
        grown = wait_tasks(cluster, "web", one_running_per_slot(3), "three web tasks running")
        third = next(t for t in live(grown) if t.slot == 3)
        followed.wait_for_line(f"web.3.{third.id} | start ahoy")

    assert moor(cluster, "delete", "-f", str(web)).stdout == "service/web deleted\n"
    wait_for(lambda: not [t for t in tasks(cluster, "web") if t.observed_state == S.TASK_STATE_RUNNING], 30,
             "web's tasks stopped")  # fmt: skip
    gone = moor(cluster, "delete", "web", check=False)
    assert (gone.returncode, gone.stderr) == (3, "error: service 'web' not found\n")


def test_not_found_invalid_and_unreachable_exit_codes(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=1)
    for args in (["describe", "service", "nope"], ["describe", "task", "nope"], ["describe", "node", "nope"],
                 ["logs", "nope"], ["scale", "nope=2"], ["node", "drain", "nope"], ["exec", "nope", "--", "true"]):  # fmt: skip
        result = moor(cluster, *args, check=False)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "not found" in result.stderr and result.stderr.count("\n") == 1

    # A link to a service that exists neither in the apply nor in the cluster: nothing is written.
    app = write(tmp_path, "app.yaml", "name: app\nimage: busybox\nreplicas: 0\n")
    linked = write(tmp_path, "linked.yaml", "name: front\nimage: busybox\nlinks: ['db:database']\n")
    original = loading.NOT_SUPPORTED_YET
    result = moor(cluster, "apply", "-f", str(app), "-f", str(linked), check=False)
    assert result.returncode == 2
    expected = f"{linked}: document 1: links[0]: service 'db' is neither in these manifests nor in the cluster"
    if "links" in original:
        expected = f"{linked}: document 1: links: not supported yet: nothing in this version honours it; remove it"
    assert expected in result.stderr.splitlines()
    assert "app" not in moor(cluster, "get", "services").stdout

    # Several controllers: an unreachable one is skipped.
    dead = f"127.0.0.1:{free_port()}"
    env = {**cluster.cli_env(), "MOOR_CONTROLLER": f"{dead},{cluster.controller_address}"}
    failover = subprocess.run([MOOR, "get", "nodes"], env=env, capture_output=True, text=True, timeout=60)
    assert failover.returncode == 0 and "h1" in failover.stdout
    env["MOOR_CONTROLLER"] = dead
    down = subprocess.run([MOOR, "get", "nodes"], env=env, capture_output=True, text=True, timeout=60)
    assert (down.returncode, down.stderr) == (1, f"error: controller {dead} unreachable: connection refused\n")


def test_nodes_events_and_watch(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=2)
    assert moor(cluster, "node", "label", "h1", "zone=a", "disk=ssd").stdout == "node/h1 labels: disk=ssd,zone=a\n"
    assert moor(cluster, "node", "label", "h1", "disk-").stdout == "node/h1 labels: zone=a\n"
    assert "labels:\n  zone: a" in moor(cluster, "node", "inspect", "h1").stdout

    with streaming(cluster, "events", "--kind", "task") as events, streaming(cluster, "get", "services", "-w") as watch:
        watch.wait_for_line("NAME", "IMAGE")
        moor(cluster, "apply", "-f", str(write(tmp_path, "web.yaml", WEB)))
        wait_tasks(cluster, "web", one_running_per_slot(2), "two web tasks running")
        started = events.wait_for_line("task started", "service=web")
        assert started.startswith("20") and "node=h" in started
        watch.wait_for_line("web", "busybox", "2")

    # What the scheduler and the restart policy honour, and `describe` explaining it.
    rules = write(
        tmp_path,
        "rules.yaml",
        """\
        name: pinned
        image: busybox
        replicas: 2
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        stop_grace_period: 1s
        placement: {constraints: ["node.labels.zone == a"], max_per_node: 1}
        ---
        name: crash
        image: busybox
        command: ["sh", "-c", "exit 3"]
        restart: none
        ---
        name: hog
        image: busybox
        resources: {reservations: {memory: 1024Gi}}
        """,
    )
    moor(cluster, "apply", "-f", str(rules))
    pinned = wait_tasks(cluster, "pinned", lambda ts: len(ts) == 2 and any(t.observed_state == S.TASK_STATE_RUNNING
                        for t in ts) and any(t.message for t in ts if not t.node_id), "one pinned task on h1, one pending")  # fmt: skip
    assert [t.node_id for t in pinned if t.observed_state == S.TASK_STATE_RUNNING] == ["h1"]
    waiting = next(t for t in pinned if not t.node_id)
    assert waiting.message in moor(cluster, "describe", "service", "pinned").stdout
    crashed = wait_tasks(cluster, "crash", lambda ts: any(t.observed_state == S.TASK_STATE_FAILED for t in ts),
                         "the crash task failed")  # fmt: skip
    assert len(crashed) == 1 and crashed[0].exit_code == 3 and crashed[0].restarts == 0
    task_text = moor(cluster, "describe", "task", "crash.1").stdout
    assert "State:      failed" in task_text and "Exit code:  3" in task_text
    hog = wait_tasks(cluster, "hog", lambda ts: any(t.message for t in ts), "hog's task says why it waits")
    assert hog[0].message in moor(cluster, "describe", "task", "hog.1").stdout
    moor(cluster, "delete", "pinned", "crash", "hog")

    assert moor(cluster, "node", "drain", "h2").stdout == "node/h2 drained\n"
    moved = wait_tasks(cluster, "web", one_running_per_slot(2, avoid="h2"), "web's tasks off the drained h2")
    assert {t.node_id for t in live(moved)} == {"h1"}
    assert "drain" in moor(cluster, "get", "nodes", "-o", "wide").stdout
    assert moor(cluster, "node", "activate", "h2").stdout == "node/h2 activated\n"
    assert "active" in moor(cluster, "describe", "node", "h2").stdout


def test_exec_runs_in_the_task_container(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=1)
    moor(cluster, "apply", "-f", str(write(tmp_path, "web.yaml", WEB.replace("replicas: 2", "replicas: 1"))), "--wait")
    (task,) = live(tasks(cluster, "web"))
    result = moor(cluster, "exec", "web.1", "--", "sh", "-c", "echo $GREETING from $(hostname); exit 7", check=False)
    assert (result.returncode, result.stdout) == (7, f"ahoy from web.1.{task.id}\n")
    piped = subprocess.run([MOOR, "exec", "-i", task.id, "--", "cat"], env=cluster.cli_env(), input="via stdin\n",
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (piped.returncode, piped.stdout) == (0, "via stdin\n")


def test_accepted_manifests_round_trip_through_controller_and_etcd(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """Every field, written through the API (no replicas, so nothing runs) and read back unchanged."""
    cluster = cluster_factory(hosts=1)
    full = write(
        tmp_path,
        "full.yaml",
        """\
        name: full
        image: busybox:1.36
        entrypoint: [/bin/sh, -c]
        command: "echo hi"
        env: {A: "1"}
        replicas: 0
        stop_grace_period: 3s
        stop_signal: INT
        labels: {tier: back}
        resources: {reservations: {cpus: 0.25, memory: 64Mi}, limits: {cpus: 1, memory: 128Mi, pids: 64}}
        ports: ["8080:80", "5353:53/udp"]
        volumes: ["data:/data", "/srv:/srv:ro", {type: tmpfs, target: /tmp}]
        volumes_from: [store]
        links: ["store:db"]
        restart: {condition: on-failure, max_attempts: 3, delay: 1s, window: 30s}
        healthcheck: {http: {port: 80, path: /healthz}, interval: 2s, timeout: 1s, retries: 2, start_period: 5s}
        placement: {constraints: ["node.labels.zone == a"], spread: [node.labels.zone], max_per_node: 1}
        update: {parallelism: 2, delay: 1s, order: start-first, failure_action: rollback, monitor: 5s, max_failure_ratio: 0.5}
        user: "1000:1000"
        working_dir: /srv
        read_only: true
        cap_add: [NET_ADMIN]
        cap_drop: [MKNOD]
        init: true
        ---
        name: store
        image: busybox
        replicas: 0
        network: none
        """,
    )
    original = loading.NOT_SUPPORTED_YET
    loading.NOT_SUPPORTED_YET = frozenset()
    try:
        manifests = load_paths([full])
    finally:
        loading.NOT_SUPPORTED_YET = original
    control = cluster.control()
    control.ApplyServices(control_pb2.ApplyServicesRequest(services=[m.to_spec() for m in manifests]), timeout=10)
    for manifest in manifests:
        stored = control.GetService(control_pb2.GetServiceRequest(name=manifest.name), timeout=10)
        assert stored.spec == manifest.to_spec()
        assert ServiceManifest.from_spec(stored.spec) == manifest

    # The reference example runs as it is.
    reference = Path(__file__).resolve().parents[2] / "examples" / "reference.yaml"
    assert moor(cluster, "apply", "-f", str(reference), "--wait").stdout.endswith("all replicas running\n")
    wait_for(lambda: "hello from reference.1." in moor(cluster, "logs", "reference").stdout, 20, "the reference's line")
    assert " as 1000 in /tmp" in moor(cluster, "logs", "reference").stdout


def test_exec_with_a_terminal_follows_its_size(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    """`moor exec -it` on a pseudo-terminal: keys reach the remote shell, and a resize reaches `stty size`."""
    cluster = cluster_factory(hosts=1)
    moor(cluster, "apply", "-f", str(write(tmp_path, "web.yaml", WEB.replace("replicas: 2", "replicas: 1"))), "--wait")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen([MOOR, "exec", "-it", "web.1", "--", "sh"], env=cluster.cli_env(),
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)  # fmt: skip
    os.close(slave)
    seen = bytearray()

    def read_until(needle: bytes) -> None:
        def arrived() -> bool:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    seen.extend(os.read(master, 65536))
            return needle in seen

        try:
            wait_for(arrived, 20, f"{needle!r} on the terminal")
        except TimeoutError as err:
            raise AssertionError(f"{err}; got {bytes(seen)!r}") from err

    try:
        os.write(master, b"stty size; echo $((6*7))\r")
        read_until(b"30 100")
        read_until(b"42")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(process.pid, signal.SIGWINCH)
        os.write(master, b"stty size\r")
        read_until(b"40 120")
        os.write(master, b"exit 5\r")
        assert process.wait(timeout=20) == 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_fields_the_manifest_accepts_are_honoured(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    """What keeps NOT_SUPPORTED_YET truthful: each accepted field, seen from inside the containers."""
    cluster = cluster_factory(hosts=2)
    stack = write(
        tmp_path,
        "stack.yaml",
        """\
        name: db
        image: busybox
        command: ["sh", "-c", "mkdir -p /www; echo served > /www/index.html; echo kept > /data/file; httpd -f -p 80 -h /www"]
        stop_signal: KILL
        stop_grace_period: 1s
        ports: ["18080:80"]
        volumes: ["data:/data"]
        resources: {limits: {memory: 256Mi, pids: 100}}
        ---
        name: app
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        stop_grace_period: 1s
        user: "1000:1000"
        working_dir: /tmp
        read_only: true
        cap_add: [NET_ADMIN]
        init: true
        volumes_from: [db]
        ---
        name: iso
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        stop_grace_period: 1s
        network: none
        seccomp: unconfined
        devices: ["/dev/null:/dev/extra-null"]
        """,
    )
    moor(cluster, "apply", "-f", str(stack), "--wait")

    def inside(task: str, script: str) -> str:
        return moor(cluster, "exec", task, "--", "sh", "-c", script).stdout

    assert inside("app.1", "id -u; id -g; pwd").split() == ["1000", "1000", "/tmp"]
    assert inside("app.1", "touch /written 2>/dev/null && echo rw || echo ro").strip() == "ro"
    bounding = int(inside("app.1", "grep CapBnd /proc/self/status").split()[1], 16)
    assert bounding & (1 << 12)  # CAP_NET_ADMIN
    assert inside("app.1", "cat /proc/1/cmdline | tr '\\0' ' '").split()[:1] != ["sh"]  # an init is PID 1
    assert inside("app.1", "cat /data/file").strip() == "kept"  # volumes_from db
    assert inside("iso.1", "cat /proc/net/dev").count(":") == 1  # only lo
    assert inside("app.1", "grep Seccomp: /proc/self/status").split() == ["Seccomp:", "2"]  # Docker's profile
    assert inside("iso.1", "grep Seccomp: /proc/self/status").split() == ["Seccomp:", "0"]  # unconfined
    assert inside("iso.1", "test -c /dev/extra-null && echo node").strip() == "node"  # devices
    # root with CAP_MKNOD, unconfined: the device cgroup still refuses what is not in the list
    assert inside("iso.1", "mknod /tmp/k c 1 11 2>/dev/null || echo refused").strip() == "refused"

    (db,) = live(tasks(cluster, "db"))
    address = cluster.agent(db.node_id).host.address

    def served() -> bool:
        try:
            with socket.create_connection((address, 18080), timeout=2) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b"served" in conn.recv(4096)
        except OSError:
            return False

    wait_for(served, 20, f"db's page on {address}:18080")

    # links: applied once db runs, the client finds db by its name and alias through /etc/hosts.
    client = write(
        tmp_path,
        "client.yaml",
        """\
        name: client
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        stop_grace_period: 1s
        links: ["db:database"]
        """,
    )
    moor(cluster, "apply", "-f", str(client), "--wait")
    (db,) = live(tasks(cluster, "db"))  # now with the address its agent reported
    assert f"{db.address}\tdb database\n" in inside("client.1", "cat /etc/hosts")
    page = inside("client.1", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc database 80")
    assert "served" in page
