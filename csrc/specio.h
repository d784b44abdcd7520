/* specio.h: the serialized spawn spec, as the monitor reads it (internal; not part of the cdef).
 * Include after pmd_sys.h and pmd.h. The writer is pmd_spec_write in pmd.h. */
#ifndef PMD_SPECIO_H
#define PMD_SPECIO_H

/*
 * What pmd-monitor is asked to do: the spec, with every pointer into `map` (the blob, mapped
 * read-only: strings and the groups array) or `arena` (one anonymous mapping for the pointer
 * tables and the mount and rlimit arrays). Both are released by pmd_spec_release.
 */
struct pmd_monitor_req {
    struct pmd_spawn_spec spec;
    struct pmd_monitor_spec mon;
    void *map;
    size_t map_len;
    void *arena;
    size_t arena_len;
};

/*
 * Map the blob in fd (a memfd or a regular file) and rebuild the request. Every offset, length
 * and string is checked against the blob's bounds, and its checksum against its contents, so a
 * truncated or corrupt blob is an error (EINVAL, op "read spec", the reason in path), never a
 * crash. fd stays open.
 */
int pmd_spec_read(int fd, struct pmd_monitor_req *req, struct pmd_error *err);
void pmd_spec_release(struct pmd_monitor_req *req);

/*
 * What the monitor writes on its status pipe, once: MON_OK with the container's pid and its
 * own, or MON_ERROR with the error (a failed spawn's, errno/op/path as the child reported it).
 * sizeof < PIPE_BUF, so the write is atomic.
 */
#define PMD_MON_OK 1
#define PMD_MON_ERROR 2
#define PMD_MON_HELD 3 /* spec->hold: the container exists, waits for a byte on the channel */
struct pmd_monitor_msg {
    int kind;
    int pid;
    int monitor_pid;
    struct pmd_error err;
};

#endif
