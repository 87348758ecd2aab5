"""Containers: bundles, OCI config, the fork server and shim, namespaces, cgroups, volumes, logs."""
