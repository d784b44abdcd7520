/*
 * mount.c: overlay mounts (parent side, entry points) and the container's filesystem setup
 * (child side: propagation, rootfs, mounts, /dev, pivot_root, masked and read-only paths).
 *
 * Everything named child_* / pmd_child_* runs between clone() and execve() in a copy of a
 * multi-threaded CPython: only syscalls and the string helpers below, no malloc, no stdio.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 1
#define FSMOUNT_CLOEXEC 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 4
#endif

/* ---- small async-signal-safe string helpers -------------------------------------------- */

/* dst = a + b (+ c); -1 with ENAMETOOLONG if it does not fit. */
static int join3(char *dst, size_t size, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;

    if (la + lb + lc + 1 > size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb);
    if (c)
        memcpy(dst + la + lb, c, lc);
    dst[la + lb + lc] = '\0';
    return 0;
}

static void fmt_fd_path(char buf[32], int fd)
{
    char digits[12];
    int n = 0;

    do {
        digits[n++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd > 0);
    memcpy(buf, "/proc/self/fd/", 14);
    for (int i = 0; i < n; i++)
        buf[14 + i] = digits[n - 1 - i];
    buf[14 + n] = '\0';
}

/* ---- resolving targets inside the rootfs ------------------------------------------------- */

/*
 * Mount targets come from an image, which may be hostile: a rootfs whose /proc is a symlink to
 * /etc would have a plain mount("proc", "<rootfs>/proc") land on the host's /etc. So every target is
 * resolved with openat2(RESOLVE_IN_ROOT), which treats the rootfs as "/" for symlinks and "..", and
 * the mount is made on the resulting O_PATH fd through its /proc/self/fd/N magic link (the host's
 * /proc is still visible before pivot_root; /proc/self resolves to our pid in that proc's pid
 * namespace even inside a new pid namespace).
 */
static int resolve(int rootfd, const char *rel, int dir_only)
{
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC | (dir_only ? O_DIRECTORY : 0),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };

    return (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof how);
}

/* mkdir -p inside the root; the last component becomes a file when leaf_is_file. */
static int mkdir_in_root(int rootfd, const char *rel, int leaf_is_file, struct pmd_error *err)
{
    char prefix[PATH_MAX];
    size_t len = strlen(rel);
    int parent = -1;

    if (len >= sizeof prefix)
        return pmd_cfail(err, ENAMETOOLONG, "mkdir", rel);
    for (size_t i = 0; i <= len; i++) {
        int last, fd;

        if (rel[i] != '/' && rel[i] != '\0')
            continue;
        if (i == 0 || rel[i - 1] == '/')
            continue;
        last = (rel[i] == '\0');
        memcpy(prefix, rel, i);
        prefix[i] = '\0';
        fd = resolve(rootfd, prefix, !last || !leaf_is_file);
        if (fd < 0 && errno == ENOENT) {
            /* create the component in the already-resolved parent, never following a link */
            const char *comp = prefix;
            for (size_t j = 0; j < i; j++)
                if (prefix[j] == '/')
                    comp = prefix + j + 1;
            int dirfd = parent >= 0 ? parent : rootfd;
            if (last && leaf_is_file) {
                int f = openat(dirfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                               0644);
                if (f < 0 && errno != EEXIST)
                    return pmd_cfail(err, errno, "create mount target", rel);
                if (f >= 0)
                    close(f);
            } else if (mkdirat(dirfd, comp, 0755) < 0 && errno != EEXIST) {
                return pmd_cfail(err, errno, "mkdir", prefix);
            }
            fd = resolve(rootfd, prefix, !last || !leaf_is_file);
        }
        if (fd < 0)
            return pmd_cfail(err, errno, "resolve", prefix);
        if (parent >= 0)
            close(parent);
        parent = fd;
    }
    if (parent >= 0)
        close(parent);
    return 0;
}

/* ---- child: one mount ------------------------------------------------------------------ */

#define PROPAGATION (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

static int child_mount_one(int rootfd, const struct pmd_mount *m, struct pmd_error *err)
{
    const char *rel = m->target;
    unsigned long flags = m->mount_flags;
    int bind = (flags & MS_BIND) != 0;
    char fdpath[32];
    int fd;

    if (rel == NULL || rel[0] != '/')
        return pmd_cfail(err, EINVAL, "mount target must be absolute", rel);
    while (*rel == '/')
        rel++;
    if (m->flags & PMD_MOUNT_MKDIR) {
        struct stat st;
        int is_file = 0;
        if (bind) {
            if (stat(m->source, &st) < 0)
                return pmd_cfail(err, errno, "mount source", m->source);
            is_file = !S_ISDIR(st.st_mode);
        }
        if (mkdir_in_root(rootfd, rel, is_file, err) < 0)
            return -1;
    }
    fd = resolve(rootfd, rel, 0);
    if (fd < 0)
        return pmd_cfail(err, errno, "mount target", m->target);
    fmt_fd_path(fdpath, fd);
    if (bind) {
        int r = mount(m->source, fdpath, NULL, MS_BIND | (flags & MS_REC), NULL);
        close(fd);
        if (r < 0)
            return pmd_cfail2(err, errno, "bind mount", m->source, m->target);
        /*
         * MS_BIND ignores every other flag, so read-only/nosuid/... need a remount. The fd we
         * resolved still points at the directory *under* the new bind mount, and remounting
         * through it would flip the flags of the mount below (the rootfs!): resolve again.
         */
        if (flags & ~(MS_BIND | MS_REC | PROPAGATION)) {
            fd = resolve(rootfd, rel, 0);
            if (fd < 0)
                return pmd_cfail(err, errno, "mount target", m->target);
            fmt_fd_path(fdpath, fd);
            r = mount(NULL, fdpath, NULL, MS_BIND | MS_REMOUNT | (flags & ~(MS_REC | PROPAGATION)),
                      NULL);
            close(fd);
            if (r < 0)
                return pmd_cfail2(err, errno, "remount bind", m->source, m->target);
        }
    } else {
        int r = mount(m->source, fdpath, m->fstype, flags & ~PROPAGATION, m->data);
        close(fd);
        if (r < 0)
            return pmd_cfail2(err, errno, "mount", m->fstype ? m->fstype : "?", m->target);
    }
    if (flags & PROPAGATION) {
        fd = resolve(rootfd, rel, 0);
        if (fd < 0)
            return pmd_cfail(err, errno, "mount target", m->target);
        fmt_fd_path(fdpath, fd);
        int r = mount(NULL, fdpath, NULL, flags & (PROPAGATION | MS_REC), NULL);
        close(fd);
        if (r < 0)
            return pmd_cfail(err, errno, "mount propagation", m->target);
    }
    return 0;
}

/* ---- child: /dev --------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned major, minor;
} std_devices[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9},
    {"tty", 5, 0},
};

static const struct {
    const char *name, *target;
} std_links[] = {
    {"fd", "/proc/self/fd"},         {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"},   {"ptmx", "pts/ptmx"},         {"core", "/proc/kcore"},
};

/*
 * Populate /dev (a fresh tmpfs from the mount list) with the standard nodes. mknod is one syscall
 * per node and needs CAP_MKNOD in the initial user namespace; where it is refused (a user
 * namespace), bind-mount the host's node over an empty file instead, as rootless runtimes do.
 * The child runs with umask 0 here, so the 0666 modes are exact.
 */
static int child_dev_setup(int rootfd, struct pmd_error *err)
{
    struct open_how how = {.flags = O_DIRECTORY | O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int dfd = (int)syscall(SYS_openat2, rootfd, "dev", &how, sizeof how);
    size_t i;

    if (dfd < 0)
        return pmd_cfail(err, errno, "open", "/dev");
    for (i = 0; i < sizeof std_devices / sizeof std_devices[0]; i++) {
        const char *name = std_devices[i].name;
        char host[32], fdpath[32];
        if (mknodat(dfd, name, S_IFCHR | 0666,
                    makedev(std_devices[i].major, std_devices[i].minor)) == 0)
            continue;
        if (errno != EPERM)
            return pmd_cfail2(err, errno, "mknod", "/dev", name);
        int f = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (f < 0)
            return pmd_cfail2(err, errno, "create", "/dev", name);
        close(f);
        f = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (f < 0)
            return pmd_cfail2(err, errno, "open", "/dev", name);
        fmt_fd_path(fdpath, f);
        join3(host, sizeof host, "/dev/", name, NULL);
        int r = mount(host, fdpath, NULL, MS_BIND, NULL);
        close(f);
        if (r < 0)
            return pmd_cfail2(err, errno, "bind mount", host, name);
    }
    for (i = 0; i < sizeof std_links / sizeof std_links[0]; i++) {
        /* /dev/core points at /proc/kcore, which a kernel without CONFIG_PROC_KCORE lacks:
         * no dangling link then (the host's /proc is still the one visible here) */
        if (strcmp(std_links[i].name, "core") == 0 && access("/proc/kcore", F_OK) < 0)
            continue;
        if (symlinkat(std_links[i].target, dfd, std_links[i].name) < 0 && errno != EEXIST)
            return pmd_cfail2(err, errno, "symlink", "/dev", std_links[i].name);
    }
    close(dfd);
    return 0;
}

/* ---- child: after pivot_root ------------------------------------------------------------ */

/*
 * A file is masked by /dev/null bound over it, a directory by an empty read-only tmpfs; a path
 * this kernel does not have is skipped. The stat comes first so that a missing /dev/null (no
 * dev_setup) is an error, not a path silently left unmasked.
 */
static int child_mask(const char *path, struct pmd_error *err)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : pmd_cfail(err, errno, "mask", path);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=0k") < 0)
            return pmd_cfail(err, errno, "mask", path);
    } else if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0) {
        return pmd_cfail2(err, errno, "mask", "/dev/null", path);
    }
    return 0;
}

static int child_readonly(const char *path, struct pmd_error *err)
{
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT)
            return 0;
        return pmd_cfail(err, errno, "bind mount", path);
    }
    if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0)
        return pmd_cfail(err, errno, "remount read-only", path);
    return 0;
}

/* ---- child: the whole filesystem sequence ------------------------------------------------ */

int pmd_child_mounts(const struct pmd_spawn_spec *s, int *rootfd_out, struct pmd_error *err)
{
    int rootfd;

    *rootfd_out = -1;
    if (s->join_pid > 0)
        return 0;
    if (!(s->namespaces & CLONE_NEWNS) && !s->mounts_joined)
        return 0; /* the caller's mount namespace: nothing to mount (see pmd_child_pivot) */
    /*
     * A new mount namespace starts as a copy whose mounts keep the host's propagation: with
     * systemd, / is shared, so everything mounted below would show up on the host (and
     * pivot_root refuses a shared parent). Make the whole tree private first.
     */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return pmd_cfail(err, errno, "make-rprivate", "/");
    if (s->rootfs) {
        /*
         * pivot_root needs the new root to be a mount point; binding the rootfs onto itself makes
         * it one (an overlay merged dir already is, but a plain directory is not). The rootfd is
         * opened *after* the bind so that it names the top mount: opened before, the mounts below
         * would land under the bind, hidden.
         */
        if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
            return pmd_cfail(err, errno, "bind mount rootfs", s->rootfs);
        rootfd = open(s->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (rootfd < 0)
            return pmd_cfail(err, errno, "open rootfs", s->rootfs);
    } else {
        rootfd = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (rootfd < 0)
            return pmd_cfail(err, errno, "open", "/");
    }
    for (int i = 0; i < s->n_mounts; i++)
        if (child_mount_one(rootfd, &s->mounts[i], err) < 0)
            return -1;
    if (s->dev_setup && child_dev_setup(rootfd, err) < 0)
        return -1;
    *rootfd_out = rootfd;
    return 0;
}

int pmd_child_pivot(const struct pmd_spawn_spec *s, int rootfd, struct pmd_error *err)
{
    if (rootfd < 0) {
        /* The caller's mount namespace, not ours to change: the rootfs by chroot (as runc),
         * here rather than with the mounts so that create_hooks still see the caller's root. */
        if (s->rootfs && s->join_pid <= 0 && (chroot(s->rootfs) < 0 || chdir("/") < 0))
            return pmd_cfail(err, errno, "chroot", s->rootfs);
        return 0;
    }
    if (s->rootfs) {
        /*
         * pivot_root(".", "."): with the new root as cwd, both new_root and put_old are ".". The
         * kernel mounts the old root on top of the new one, at "/" and ".", so it is no longer
         * reachable except as the topmost mount on our cwd; unmounting "." then removes exactly
         * it, with no put_old directory needed inside the (possibly read-only) rootfs. Before the
         * lazy unmount, the old root is made rslave so the unmount cannot propagate back to the
         * host even if someone re-shared it meanwhile (it was made private above).
         */
        if (fchdir(rootfd) < 0)
            return pmd_cfail(err, errno, "chdir", s->rootfs);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            return pmd_cfail(err, errno, "pivot_root", s->rootfs);
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            return pmd_cfail(err, errno, "make-rslave", "old root");
        if (umount2(".", MNT_DETACH) < 0)
            return pmd_cfail(err, errno, "umount", "old root");
        if (chdir("/") < 0)
            return pmd_cfail(err, errno, "chdir", "/");
    }
    close(rootfd);
    for (const char *const *p = s->masked_paths; p && *p; p++)
        if (child_mask(*p, err) < 0)
            return -1;
    for (const char *const *p = s->readonly_paths; p && *p; p++)
        if (child_readonly(*p, err) < 0)
            return -1;
    if (s->readonly_root &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
        return pmd_cfail(err, errno, "remount read-only", "/");
    /* Last: an unbindable root would refuse the read-only paths' binds of themselves. */
    if (s->root_propagation &&
        mount(NULL, "/", NULL, (unsigned long)s->root_propagation, NULL) < 0)
        return pmd_cfail(err, errno, "root propagation", "/");
    return 0;
}

/* ---- entry points: overlay ------------------------------------------------------------- */

static int check_layer_path(const char *p, struct pmd_error *err)
{
    if (p[0] == '\0' || strpbrk(p, ",:\\") != NULL)
        return pmd_fail(err, EINVAL, "overlay path", "%s", p);
    return 0;
}

/* Options longer than a page: fsopen + one fsconfig("lowerdir+") per layer (Linux >= 6.8). */
static int overlay_mount_fsconfig(const char *lowerdirs, const char *upper, const char *work,
                                  const char *target, int flags, struct pmd_error *err)
{
    pmd_cleanup_fd int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    pmd_cleanup_fd int mfd = -1;
    char one[PATH_MAX];
    const char *p = lowerdirs;

    if (fsfd < 0)
        return pmd_fail(err, errno, "fsopen", "overlay");
    while (*p) {
        size_t n = strcspn(p, ":");
        if (n >= sizeof one)
            return pmd_fail(err, ENAMETOOLONG, "overlay lowerdir", "%.*s", (int)n, p);
        memcpy(one, p, n);
        one[n] = '\0';
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "lowerdir+", one, 0) < 0)
            return pmd_fail(err, errno == EINVAL ? E2BIG : errno, "overlay lowerdir+", "%s", one);
        p += n + (p[n] == ':');
    }
    if (upper && syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0)
        return pmd_fail(err, errno, "overlay upperdir", "%s", upper);
    if (work && syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0)
        return pmd_fail(err, errno, "overlay workdir", "%s", work);
    if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "index", "off", 0) < 0 ||
        syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "redirect_dir", "off", 0) < 0)
        return pmd_fail(err, errno, "overlay options", "%s", target);
    if ((flags & PMD_OVERLAY_VOLATILE) && upper)
        (void)syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0); /* < 5.10: none */
    if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return pmd_fail(err, errno, "overlay create", "%s", target);
    mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC,
                       (flags & PMD_OVERLAY_RDONLY) ? 1 /* MOUNT_ATTR_RDONLY */ : 0);
    if (mfd < 0)
        return pmd_fail(err, errno, "fsmount", "%s", target);
    if (syscall(SYS_move_mount, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return pmd_fail(err, errno, "move_mount", "%s", target);
    return 0;
}

int pmd_overlay_mount(const char *lowerdirs, const char *upper, const char *work,
                      const char *target, int flags, struct pmd_error *err)
{
    char data[8192];
    char one[PATH_MAX];
    const char *p;
    int n, nlower = 0;
    long page = sysconf(_SC_PAGESIZE);

    if (lowerdirs == NULL || lowerdirs[0] == '\0' || target == NULL)
        return pmd_fail(err, EINVAL, "overlay mount", "%s", "lowerdirs and target are required");
    if ((upper == NULL) != (work == NULL))
        return pmd_fail(err, EINVAL, "overlay mount", "%s", "upper and work go together");
    /* Check each lower exists first: the kernel's EINVAL/ENOENT alone would not say which. */
    for (p = lowerdirs; *p; nlower++) {
        size_t len = strcspn(p, ":");
        struct stat st;
        if (len == 0 || len >= sizeof one)
            return pmd_fail(err, EINVAL, "overlay lowerdir", "%s", lowerdirs);
        memcpy(one, p, len);
        one[len] = '\0';
        if (check_layer_path(one, err) < 0)
            return -1;
        if (stat(one, &st) < 0)
            return pmd_fail(err, errno, "overlay lowerdir", "%s", one);
        if (!S_ISDIR(st.st_mode))
            return pmd_fail(err, ENOTDIR, "overlay lowerdir", "%s", one);
        p += len + (p[len] == ':');
    }
    if (upper && (check_layer_path(upper, err) < 0 || check_layer_path(work, err) < 0))
        return -1;
    if (upper == NULL && nlower < 2)
        return pmd_fail(err, EINVAL, "overlay mount", "%s", "a read-only overlay needs 2 lowers");
    if (upper)
        n = snprintf(data, sizeof data, "lowerdir=%s,upperdir=%s,workdir=%s,index=off,redirect_dir=off%s",
                     lowerdirs, upper, work, (flags & PMD_OVERLAY_VOLATILE) ? ",volatile" : "");
    else
        n = snprintf(data, sizeof data, "lowerdir=%s,index=off,redirect_dir=off", lowerdirs);
    /* mount(2) copies at most one page of data and silently truncates the rest. */
    if (n < 0 || n >= page || (size_t)n >= sizeof data)
        return overlay_mount_fsconfig(lowerdirs, upper, work, target, flags, err);
    if (mount("overlay", target, "overlay", (flags & PMD_OVERLAY_RDONLY) ? MS_RDONLY : 0, data) == 0)
        return 0;
    if (errno == EINVAL && upper && (flags & PMD_OVERLAY_VOLATILE)) {
        /* A kernel before 5.10 knows no "volatile": the same mount without it. (The other
         * EINVAL, a volatile marker left in work/, fails again here; the caller clears it.) */
        data[n - strlen(",volatile")] = '\0';
        if (mount("overlay", target, "overlay", (flags & PMD_OVERLAY_RDONLY) ? MS_RDONLY : 0, data) == 0)
            return 0;
    }
    return pmd_fail(err, errno, "mount overlay", "%s", target);
}

int pmd_umount(const char *target, int flags, struct pmd_error *err)
{
    if (target == NULL)
        return pmd_fail(err, EINVAL, "umount", "%s", "target is required");
    if (umount2(target, flags) < 0)
        return pmd_fail(err, errno, "umount", "%s", target);
    return 0;
}
