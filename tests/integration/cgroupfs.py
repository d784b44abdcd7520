"""Where the tests' own cgroup hierarchies are, so that the suite passes at the root of the host's
cgroup tree, inside a CI runner's cgroup, and inside a container whose /sys/fs/cgroup shows
only its own part of the host's tree."""
from __future__ import annotations


def cgroup_mount_root(controller: str) -> str:
    """The cgroup path, ending in "/", at which the v1 hierarchy of `controller` is mounted under
    /sys/fs/cgroup (field 4 of /proc/self/mountinfo). /proc/PID/cgroup names a cgroup by its path
    from the hierarchy's root (or the cgroup namespace's), so a cgroup made at
    /sys/fs/cgroup/CTL/X shows there as ROOT/X: "/X" on a host, "/docker/ID/X" in a container
    that bind-mounts its own cgroup."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3].split(",")
            if fstype == "cgroup" and controller in options \
                    and fields[4].startswith("/sys/fs/cgroup/"):
                return fields[3].rstrip("/") + "/"
    raise LookupError(f"no cgroup v1 hierarchy of {controller} is mounted under /sys/fs/cgroup")
