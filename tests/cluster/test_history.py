"""Task history as Docker Swarm keeps it: the containers of ended tasks stay (exited, with their
logs) on their host while the controller holds the task, and go once it is pruned or its
service deleted. Their network goes as soon as they stop; no mount is held for them."""

from __future__ import annotations

from pathlib import Path

from agent.runtime.containers.lifecycle import ContainerStatus
from controller.slots import HISTORY
from moorage.localcluster.cluster import AgentHost, LocalCluster
from moorage.localcluster.procs import wait_for
from moorage.v1 import control_pb2, types_pb2
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import containers, moor, tasks

S = types_pb2.TaskState
CRASH = """\
name: crashy
image: busybox
replicas: 1
command: ["sh", "-c", "echo crash-line-$(hostname); exit 1"]
restart: {{condition: on-failure, max_attempts: {attempts}, delay: 0.2s}}
"""


def apply_crashy(cluster: LocalCluster, tmp_path: Path, attempts: int) -> None:
    manifest = tmp_path / "crashy.yaml"
    manifest.write_text(CRASH.format(attempts=attempts))
    moor(cluster, "apply", "-f", str(manifest))


def gave_up(cluster: LocalCluster, restarts: int) -> None:
    """Wait until the restart policy of crashy has given up after ``restarts``."""

    def check() -> bool:
        service = cluster.control().GetService(control_pb2.GetServiceRequest(name="crashy"), timeout=5)
        return f"gave up after {restarts} restarts" in service.message

    wait_for(check, 60, f"crashy's restart policy to give up after {restarts} restarts")


def settled(cluster: LocalCluster, restarts: list[int]) -> list[types_pb2.Task]:
    """crashy's tasks (by restart count), once they are those of ``restarts`` with their exits recorded."""
    found: list[types_pb2.Task] = []

    def check() -> bool:
        found[:] = sorted(tasks(cluster, "crashy", all=True), key=lambda t: t.restarts)
        final = all(t.observed_state == S.TASK_STATE_FAILED and t.container_id for t in found)
        return final and [t.restarts for t in found] == restarts

    try:
        wait_for(check, 30, f"crashy's tasks to be restarts {restarts}, all failed")
    except TimeoutError as err:
        raise AssertionError(f"{err}; last: {[(t.restarts, t.observed_state) for t in found]}") from err
    return found


def attached(agent: AgentHost, container_id: str) -> bool:
    """Whether the host's network still holds an attachment (address, veth, pinned netns) for it."""
    return (agent.state_dir / "network" / "attachments" / f"{container_id}.json").exists()


def mounted(paths: list[Path]) -> list[str]:
    table = Path("/proc/self/mounts").read_text()
    return [str(p) for p in paths if str(p) in table]


def kept_exited(agent: AgentHost, ids: set[str]) -> bool:
    """Exactly ``ids`` are the host's containers, all exited, none attached to the network."""
    held = containers(agent)
    return set(held) == ids and all(c.status is ContainerStatus.EXITED and not attached(agent, i) for i, c in held.items())


def test_exited_tasks_keep_their_containers_and_logs_across_an_agent_restart(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    # A TTL no agent restart on a loaded machine outlasts: the node stays up, its tasks where they are.
    cluster = cluster_factory(hosts=1, node_ttl=30)
    apply_crashy(cluster, tmp_path, attempts=2)
    gave_up(cluster, 2)
    history = settled(cluster, [0, 1, 2])
    assert [t.desired_state for t in history] == [S.TASK_STATE_SHUTDOWN] * 2 + [S.TASK_STATE_RUNNING]
    agent = cluster.agents[0]
    ids = {t.id for t in history}
    wait_for(lambda: kept_exited(agent, ids), 20, "the host to keep the three exited containers, detached")
    assert not mounted([agent.state_dir / "containers" / i for i in ids])

    def all_lines(out: str) -> bool:
        return all(f"crashy.1.{t.id} | crash-line-crashy.1.{t.id}" in out for t in history)

    out = moor(cluster, "logs", "crashy").stdout
    assert all_lines(out), out
    positions = [out.index(f"crashy.1.{t.id} |") for t in history]
    assert positions == sorted(positions), "interleaved by time: each task ran after the one before"
    oldest = history[0]
    assert moor(cluster, "logs", oldest.id).stdout == f"crashy.1.{oldest.id} | crash-line-crashy.1.{oldest.id}\n"
    assert moor(cluster, "logs", oldest.id[:6], "--tail", "1").stdout.endswith(f"crash-line-crashy.1.{oldest.id}\n")

    # A restarted agent re-adopts the history as it is: nothing removed, nothing started again.
    cluster.kill_agent(agent)
    cluster.start_agent(agent)
    cluster.wait_nodes_ready()
    wait_for(lambda: all_lines(moor(cluster, "logs", "crashy").stdout), 30, "the history's logs after the restart")
    assert kept_exited(agent, ids)
    assert [t.id for t in settled(cluster, [0, 1, 2])] == [t.id for t in history]

    moor(cluster, "delete", "crashy")
    wait_for(lambda: not containers(agent), 30, "the deleted service's containers to be removed")
    assert not [i for i in ids if (agent.state_dir / "containers" / i).exists()]
    assert str(cluster.base) not in Path("/proc/self/mounts").read_text()
    assert not tasks(cluster, "crashy", all=True)


def test_history_pruned_beyond_the_limit_loses_its_containers(cluster_factory: ClusterFactory, tmp_path: Path) -> None:
    cluster = cluster_factory(hosts=1)
    attempts = HISTORY + 2  # the slot's history is HISTORY + 2 ended tasks: the two oldest are pruned
    apply_crashy(cluster, tmp_path, attempts=attempts)
    gave_up(cluster, attempts)
    kept = settled(cluster, list(range(2, attempts + 1)))
    agent = cluster.agents[0]
    ids = {t.id for t in kept}
    wait_for(lambda: kept_exited(agent, ids), 30, "the host to hold the containers of the kept tasks only")
    out = moor(cluster, "logs", "crashy").stdout
    assert sorted(line.split(" | ")[0] for line in out.splitlines()) == sorted(f"crashy.1.{i}" for i in ids)
    assert not mounted([agent.state_dir / "containers"])
