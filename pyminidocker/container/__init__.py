"""Containers: lifecycle (runtime), spec policy, confinement defaults, cgroups."""
