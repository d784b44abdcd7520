/* System headers and internal helpers shared by the C sources; not part of the cdef. */
#ifndef PMD_SYS_H
#define PMD_SYS_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/filter.h>

struct pmd_error;
struct pmd_spawn_spec;

/* Record errno `e`, the operation and a printf-style detail in err; always returns -1 so that
 * each call site is one line: `if (x < 0) return pmd_fail(err, errno, "open", "%s", path);` */
int pmd_fail(struct pmd_error *err, int e, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Async-signal-safe variant for the cloned child (no printf machinery): copies op and path.
 * pmd_cfail2 records "a -> b" as the path. Both return -1. */
int pmd_cfail(struct pmd_error *err, int e, const char *op, const char *path);
int pmd_cfail2(struct pmd_error *err, int e, const char *op, const char *a, const char *b);

/* Steps run in the cloned child only: async-signal-safe, no malloc (mount.c, confine.c). */
/* rprivate, rootfs bind, mounts[], /dev; *rootfd = the new root (-1 without CLONE_NEWNS). */
int pmd_child_mounts(const struct pmd_spawn_spec *s, int *rootfd, struct pmd_error *err);
/* pivot_root into rootfd (if rootfs), masked and read-only paths, read-only root. */
int pmd_child_pivot(const struct pmd_spawn_spec *s, int rootfd, struct pmd_error *err);
int pmd_child_confine(const struct pmd_spawn_spec *s, struct pmd_error *err);

/* CLOCK_MONOTONIC in nanoseconds (vDSO: no syscall, no lock; safe in the cloned child too). */
static inline long long pmd_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* close() on scope exit, for fds owned by the parent: `int fd __attribute__((cleanup(pmd_closep)))` */
static inline void pmd_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define pmd_cleanup_fd __attribute__((cleanup(pmd_closep)))

#endif
