"""A real cluster on one machine: etcd, controllers and agent hosts.

Used by `make demo` and by the multi-host test harness (tests/cluster/). Every
process is real; every "host" is a network namespace with its own addresses.
"""
