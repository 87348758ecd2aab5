"""Pure pieces of host networking: address choice, route diffs, /etc files, NAT rules, records."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.network import etcfiles, ipam, links, nat, routes
from agent.network.errors import AddressesExhausted
from agent.network.records import Attachment, PortMapping, Records

SUBNET = ipaddress.IPv4Network("10.244.3.0/24")
A = ipaddress.IPv4Address


def test_first_address_skips_network_and_gateway() -> None:
    assert ipam.gateway(SUBNET) == A("10.244.3.1")
    assert ipam.allocate(SUBNET, set()) == A("10.244.3.2")


def test_allocation_continues_after_the_last_one_and_wraps() -> None:
    assert ipam.allocate(SUBNET, set(), after=A("10.244.3.7")) == A("10.244.3.8")
    assert ipam.allocate(SUBNET, {A("10.244.3.8")}, after=A("10.244.3.7")) == A("10.244.3.9")
    assert ipam.allocate(SUBNET, set(), after=A("10.244.3.254")) == A("10.244.3.2")


def test_a_cursor_outside_the_subnet_starts_at_the_beginning() -> None:
    assert ipam.allocate(SUBNET, set(), after=A("10.9.9.9")) == A("10.244.3.2")


def test_full_subnet_is_refused_with_its_name() -> None:
    taken = {SUBNET.network_address + i for i in range(2, 255)}
    with pytest.raises(AddressesExhausted, match="10.244.3.0/24"):
        ipam.allocate(SUBNET, taken)


@given(st.sets(st.integers(2, 254), max_size=252), st.integers(0, 255))
def test_allocation_never_returns_a_taken_or_reserved_address(taken_hosts: set[int], after: int) -> None:
    taken = {SUBNET.network_address + i for i in taken_hosts}
    got = ipam.allocate(SUBNET, taken, after=SUBNET.network_address + after)
    assert got in SUBNET and got not in taken
    assert got not in (SUBNET.network_address, ipam.gateway(SUBNET), SUBNET.broadcast_address)


def test_route_changes_add_repoint_and_drop() -> None:
    n1, n2, n3 = (ipaddress.IPv4Network(f"10.244.{i}.0/24") for i in (1, 2, 3))
    current = {n1: A("10.0.0.1"), n2: A("10.0.0.2")}
    desired = {n2: A("10.0.0.9"), n3: A("10.0.0.3")}
    assert routes.changes(current, desired) == ({n2: A("10.0.0.9"), n3: A("10.0.0.3")}, {n1})
    assert routes.changes(desired, desired) == ({}, set())


def test_hosts_file_names_the_container_and_its_links() -> None:
    text = etcfiles.hosts("web.1.abc", "10.244.3.5", [etcfiles.LinkEntry("10.244.1.2", ("db", "database"))])
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.244.3.5\tweb.1.abc" in lines
    assert lines[-1] == "10.244.1.2\tdb database"


def test_hosts_file_without_an_address_maps_the_name_locally() -> None:
    assert "127.0.1.1\tweb" in etcfiles.hosts("web", "", []).splitlines()


def test_link_entries_use_the_first_address_and_skip_services_without_one() -> None:
    entries = etcfiles.link_entries(
        [("db", "database"), ("cache", ""), ("gone", "g"), ("db", "db")],
        {"db": ["10.244.1.2", "10.244.2.2"], "cache": ["10.244.1.3"]},
    )
    assert entries == [
        etcfiles.LinkEntry("10.244.1.2", ("db", "database")),
        etcfiles.LinkEntry("10.244.1.3", ("cache",)),
        etcfiles.LinkEntry("10.244.1.2", ("db",)),
    ]


def test_resolv_conf_drops_loopback_resolvers_and_keeps_the_rest() -> None:
    host = "# made by x\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\nbogus\n"
    assert etcfiles.resolv_conf(host) == "nameserver 10.1.1.1\nsearch corp.example\noptions ndots:2\n"


def test_etc_files_are_written_into_the_upper_layer(tmp_path: Path) -> None:
    etcfiles.write(tmp_path, {"/etc/hosts": "x\n", "/etc/hostname": "web\n"})
    assert (tmp_path / "etc" / "hosts").read_text() == "x\n"
    assert (tmp_path / "etc" / "hostname").stat().st_mode & 0o777 == 0o644


def test_nat_ruleset_masquerades_only_when_asked() -> None:
    args = ("10.0.0.5", SUBNET, ipaddress.IPv4Network("10.244.0.0/16"))
    with_masq, without = nat.ruleset(*args, masquerade=True), nat.ruleset(*args, masquerade=False)
    assert "masquerade" in with_masq and "masquerade" not in without
    assert "ip daddr 10.0.0.5 dnat" in without
    assert "flush map" not in with_masq  # live mappings survive a reconfiguration


def test_interface_names_fit_the_kernel_limit_and_start_with_moor() -> None:
    for container_id in ("a", "x" * 128, "web.1.0123456789ab"):
        name = links.host_veth(container_id)
        assert len(name) <= 15 and name.startswith("moor")
    assert links.host_veth("a") != links.host_veth("b")
    assert len(links.BRIDGE) <= 15 and links.BRIDGE.startswith("moor")


def test_records_round_trip_and_keep_the_cursor(tmp_path: Path) -> None:
    records = Records(tmp_path)
    attachment = Attachment("c1", "bridge", "10.244.3.2", "moorv1", "/run/netns/moorc-1", (PortMapping(8080, 80),))
    records.put(attachment)
    records.set_last_address(A("10.244.3.2"))
    again = Records(tmp_path)
    assert again.get("c1") == attachment and again.all() == [attachment]
    assert again.last_address() == A("10.244.3.2")
    assert json.loads((tmp_path / "attachments" / "c1.json").read_text())["ports"] == [[8080, 80, "tcp"]]
    again.delete("c1")
    assert again.get("c1") is None and again.all() == []
    assert str(PortMapping(8080, 80, "udp")) == "8080:80/udp"


def test_a_record_torn_by_a_machine_crash_reads_as_none(tmp_path: Path) -> None:
    records = Records(tmp_path)
    kept = Attachment("c1", "bridge", "10.244.3.2", "moorv1", "/run/netns/moorc-1")
    records.put(kept)
    (tmp_path / "attachments" / "c2.json").write_text("")  # the rename landed, the data did not
    (tmp_path / "attachments" / "c3.json").write_text('{"mode": "bridge"}')
    assert records.get("c2") is None and records.get("c3") is None
    assert records.all() == [kept]


def test_etc_files_are_written_without_following_a_symlink_in_the_layer(tmp_path: Path) -> None:
    from agent.network.etcfiles import write

    outside = tmp_path / "moorage-host-etc"
    outside.mkdir()
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "etc").symlink_to(outside)
    with pytest.raises(OSError):
        write(upper, {"/etc/hosts": "127.0.0.1 x\n"})
    assert list(outside.iterdir()) == []
    (upper / "etc").unlink()
    write(upper, {"/etc/hosts": "127.0.0.1 x\n", "/etc/hostname": "x\n"})
    assert (upper / "etc" / "hosts").read_text() == "127.0.0.1 x\n"
    assert sorted(p.name for p in (upper / "etc").iterdir()) == ["hostname", "hosts"]
