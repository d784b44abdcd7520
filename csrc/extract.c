/*
 * extract.c: stream one OCI layer (tar, optionally gzip/zstd) from an fd onto disk.
 *
 * Shape of the pipeline (one pass, no temporary copy of the tar):
 *
 *   fd --read(2)--> [sha256 compressed] --> outer archive (format_raw + one filter)
 *      --decompressed blocks--> [sha256 diff_id] --> inner archive (format_tar)
 *      --entries--> policy checks / whiteouts --> archive_write_disk (absolute paths)
 *
 * For PMD_COMPRESS_NONE the outer archive is skipped: both digests see the same bytes.
 * Both digests are updated inside the read callbacks, so every byte handed to the next stage
 * is hashed exactly once; after the tar's end-of-archive the rest of both streams is drained
 * through the same callbacks.
 *
 * Containment does not rely on libarchive alone: every entry's parent directory and every
 * hardlink target is resolved with openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS against
 * an fd of dest before libarchive touches the path, and whiteouts are applied with *at()
 * calls relative to such fds only.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <limits.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define READ_BLOCK (1 << 20)
#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define OVERLAY_XATTR_PREFIX "trusted.overlay."

/*
 * libarchive's archive_write_disk_new() and archive_write_header() both run
 * `umask(u = umask(0))` to learn the umask (umask(2) has no read-only form). The umask is
 * process-wide: two extracting threads interleaving those pairs can leave it at 0 for good.
 * Serialising the two calls across threads keeps every pair atomic with respect to the other
 * extractors, so the umask always comes back. It is the one piece of shared state here.
 */
static pthread_mutex_t umask_lock = PTHREAD_MUTEX_INITIALIZER;

struct extract {
    /* compressed side */
    int fd;
    unsigned char *buf;
    EVP_MD_CTX *zhash;
    uint64_t zsize;
    int fd_eof;
    int read_errno;       /* errno of a failed read(2) */

    /* decompressed side */
    struct archive *outer; /* NULL for PMD_COMPRESS_NONE */
    EVP_MD_CTX *thash;
    uint64_t tsize;
    int tar_eof;          /* the decompressed stream ended */
    int decomp_failed;    /* the outer archive reported an error, text in decomp_msg */
    char decomp_msg[256];

    /* disk side */
    struct archive *inner;
    struct archive *disk;
    int destfd;
    char root[PATH_MAX];  /* realpath(dest) */
    size_t rootlen;
    char abspath[PATH_MAX];
    char abslink[PATH_MAX];
    char **opaque;        /* relative dirs that get trusted.overlay.opaque=y after close */
    size_t nopaque, capopaque;
    uint64_t entries;
    struct pmd_error *err;
};

/* ---- stream / hash layer ------------------------------------------------------------- */

static int open_hash(EVP_MD_CTX **ctx)
{
    *ctx = EVP_MD_CTX_new();
    if (*ctx == NULL || EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL) != 1)
        return -1;
    return 0;
}

static void hash_hex(EVP_MD_CTX *ctx, char out[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    char *p = out + sizeof "sha256:" - 1;

    EVP_DigestFinal_ex(ctx, md, &n);
    memcpy(out, "sha256:", sizeof "sha256:" - 1);
    for (i = 0; i < n; i++, p += 2)
        snprintf(p, 3, "%02x", md[i]);
    *p = '\0';
}

/* read(2) one block of the compressed stream and hash it. Returns bytes, 0 at EOF, -1. */
static ssize_t read_compressed(struct extract *x)
{
    ssize_t n;

    if (x->fd_eof)
        return 0;
    do
        n = read(x->fd, x->buf, READ_BLOCK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        x->read_errno = errno;
        return -1;
    }
    if (n == 0) {
        x->fd_eof = 1;
        return 0;
    }
    EVP_DigestUpdate(x->zhash, x->buf, (size_t)n);
    x->zsize += (uint64_t)n;
    return n;
}

/* Outer archive's read callback: compressed bytes straight from the fd. */
static la_ssize_t outer_read_cb(struct archive *a, void *data, const void **block)
{
    struct extract *x = data;
    ssize_t n = read_compressed(x);

    *block = x->buf;
    if (n < 0)
        archive_set_error(a, x->read_errno, "read failed");
    return n;
}

/*
 * Next block of the decompressed (tar) stream, hashed. Zero-copy: the block points into the
 * outer archive's (or our) buffer, valid until the next call, which is exactly the lifetime
 * libarchive requires of a read callback's block.
 */
static ssize_t read_tar(struct extract *x, const void **block)
{
    ssize_t n;

    if (x->tar_eof)
        return 0;
    if (x->outer == NULL) {
        n = read_compressed(x);
        *block = x->buf;
    } else {
        size_t size = 0;
        la_int64_t off;
        int r = archive_read_data_block(x->outer, block, &size, &off);

        if (r == ARCHIVE_EOF) {
            n = 0;
        } else if (r < ARCHIVE_OK) {
            if (!x->read_errno) {
                x->decomp_failed = 1;
                snprintf(x->decomp_msg, sizeof x->decomp_msg, "%s",
                         archive_error_string(x->outer) ? archive_error_string(x->outer)
                                                        : "corrupt stream");
            }
            return -1;
        } else {
            n = (ssize_t)size;
        }
    }
    if (n < 0)
        return -1;
    if (n == 0) {
        x->tar_eof = 1;
        return 0;
    }
    EVP_DigestUpdate(x->thash, *block, (size_t)n);
    x->tsize += (uint64_t)n;
    return n;
}

static la_ssize_t inner_read_cb(struct archive *a, void *data, const void **block)
{
    struct extract *x = data;
    ssize_t n = read_tar(x, block);

    if (n < 0)
        archive_set_error(a, x->read_errno ? x->read_errno : EINVAL, "%s",
                          x->read_errno ? "read failed" : x->decomp_msg);
    return n;
}

/*
 * Turn a failure of the inner (tar) archive into err: the cause may be ours (read error),
 * the decompressor's, a stream that ended early, or the tar format itself.
 */
static int stream_fail(struct extract *x, const char *tar_op, const char *name)
{
    const char *msg = archive_error_string(x->inner);

    if (x->read_errno)
        return pmd_fail(x->err, x->read_errno, "read", "layer stream");
    if (x->decomp_failed)
        /* A decompressor that wanted more after EOF saw a truncated stream. */
        return pmd_fail(x->err, x->fd_eof ? EIO : EINVAL, "decompress", "%s%s%s",
                        name ? name : "", name ? ": " : "", x->decomp_msg);
    return pmd_fail(x->err, x->tar_eof ? EIO : EINVAL, tar_op, "%s%s%s",
                    name ? name : "", name ? ": " : "", msg ? msg : "malformed tar");
}

static int stream_open(struct extract *x, int compression)
{
    struct archive_entry *raw;
    int code, r;

    if (compression != PMD_COMPRESS_NONE) {
        x->outer = archive_read_new();
        if (x->outer == NULL)
            return pmd_fail(x->err, ENOMEM, "decompress", "archive_read_new");
        archive_read_support_format_raw(x->outer);
        if (compression == PMD_COMPRESS_GZIP) {
            r = archive_read_support_filter_gzip(x->outer);
            code = ARCHIVE_FILTER_GZIP;
        } else {
            r = archive_read_support_filter_zstd(x->outer);
            code = ARCHIVE_FILTER_ZSTD;
        }
        /* ARCHIVE_WARN means "will use an external program": we want the library only. */
        if (r != ARCHIVE_OK)
            return pmd_fail(x->err, ENOTSUP, "decompress", "libarchive lacks the filter");
        if (archive_read_open(x->outer, x, NULL, outer_read_cb, NULL) != ARCHIVE_OK ||
            archive_read_next_header(x->outer, &raw) != ARCHIVE_OK) {
            if (x->read_errno)
                return pmd_fail(x->err, x->read_errno, "read", "layer stream");
            return pmd_fail(x->err, x->fd_eof && x->zsize == 0 ? EIO : EINVAL, "decompress",
                            "%s", archive_error_string(x->outer));
        }
        /*
         * format_raw accepts anything: when the filter's bid fails (not gzip/zstd at all),
         * libarchive silently reads the bytes as they are. Insist that our filter is the one
         * that was stacked, so a mislabelled layer cannot skip decompression.
         */
        if (archive_filter_count(x->outer) < 2 || archive_filter_code(x->outer, 0) != code)
            return pmd_fail(x->err, EINVAL, "decompress", "not a %s stream",
                            compression == PMD_COMPRESS_GZIP ? "gzip" : "zstd");
    }

    x->inner = archive_read_new();
    if (x->inner == NULL)
        return pmd_fail(x->err, ENOMEM, "tar header", "archive_read_new");
    archive_read_support_format_tar(x->inner); /* ustar, pax and GNU tar */
    if (archive_read_open(x->inner, x, NULL, inner_read_cb, NULL) != ARCHIVE_OK)
        return stream_fail(x, "tar header", NULL);
    return 0;
}

/* Hash what follows the tar's end-of-archive, then what follows the compressed stream. */
static int stream_drain(struct extract *x)
{
    const void *block;
    ssize_t n;

    while ((n = read_tar(x, &block)) > 0)
        ;
    if (n < 0) {
        if (x->read_errno)
            return pmd_fail(x->err, x->read_errno, "read", "layer stream");
        return pmd_fail(x->err, x->fd_eof ? EIO : EINVAL, "decompress", "%s", x->decomp_msg);
    }
    while ((n = read_compressed(x)) > 0)
        ;
    if (n < 0)
        return pmd_fail(x->err, x->read_errno, "read", "layer stream");
    return 0;
}

/* ---- entry policy ----------------------------------------------------------------------- */

/* RESOLVE_NO_SYMLINKS also refuses a trailing symlink (ELOOP) unless O_PATH|O_NOFOLLOW asks
 * for the link itself (openat2(2)). */
static long sys_openat2(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)flags | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };

    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/*
 * Copy name to out as a path relative to dest: leading slashes go (as tar does, so absolute
 * names stay inside), "." components go, a ".." component is refused. An empty result is
 * ".", i.e. dest itself.
 */
static int clean_name(struct extract *x, const char *name, const char *entry, char *out,
                      size_t outsz)
{
    const char *p = name, *end;
    size_t len, o = 0;

    for (;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        end = strchrnul(p, '/');
        len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return pmd_fail(x->err, EPERM, "layer entry", "%s", entry);
        if (!(len == 1 && p[0] == '.')) {
            if (o + len + 2 > outsz)
                return pmd_fail(x->err, ENAMETOOLONG, "layer entry", "%s", entry);
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = end;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return 0;
}

/*
 * dest + "/" + rel into buf. libarchive falls back to chdir(2) for names of PATH_MAX or
 * more (its "deep directories" path), and the cwd is shared by every thread: refuse those.
 */
static int absolute(struct extract *x, const char *rel, char *buf, const char *entry)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", x->root, rel);

    if (n < 0 || n >= PATH_MAX)
        return pmd_fail(x->err, ENAMETOOLONG, "layer entry", "%s", entry);
    return 0;
}

/*
 * Refuse rel if an existing component of its parent is a symlink or leaves dest.
 * ENOENT/ENOTDIR are fine: libarchive creates or replaces what is missing, and a walk that
 * stops at a missing component has met no symlink before it.
 */
static int check_parent(struct extract *x, const char *rel, const char *entry)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    long fd;

    if (slash == NULL)
        return 0;
    memcpy(parent, rel, (size_t)(slash - rel));
    parent[slash - rel] = '\0';
    fd = sys_openat2(x->destfd, parent, O_PATH | O_DIRECTORY);
    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    if (errno == ELOOP || errno == EXDEV)
        return pmd_fail(x->err, EXDEV, "layer entry", "%s", entry);
    return pmd_fail(x->err, errno, "layer entry", "%s", entry);
}

/*
 * A hardlink target must already exist beneath dest, reached without any symlink. A
 * symlink as the last component is fine: link(2) links the symlink itself, not its target.
 */
static int check_link_target(struct extract *x, const char *target, const char *entry)
{
    long fd = sys_openat2(x->destfd, target, O_PATH | O_NOFOLLOW);

    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    if (errno == ELOOP || errno == EXDEV)
        return pmd_fail(x->err, EXDEV, "layer entry", "%s", entry);
    return pmd_fail(x->err, errno, "layer entry", "%s", entry);
}

/* Only the engine may mark overlay metadata: drop trusted.overlay.* that the tar carries. */
static int drop_overlay_xattrs(struct extract *x, struct archive_entry *e, const char *entry)
{
    const char *name;
    const void *value;
    size_t size, n = 0, i, kept = 0;
    int found = 0;
    char **names;
    void **values;
    size_t *sizes;

    if (archive_entry_xattr_reset(e) == 0)
        return 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        n++;
        if (strncmp(name, OVERLAY_XATTR_PREFIX, sizeof OVERLAY_XATTR_PREFIX - 1) == 0)
            found = 1;
    }
    if (!found)
        return 0;

    /* archive_entry_xattr_clear frees the strings we are iterating: copy the keepers. */
    names = calloc(n, sizeof *names);
    values = calloc(n, sizeof *values);
    sizes = calloc(n, sizeof *sizes);
    if (names == NULL || values == NULL || sizes == NULL)
        goto nomem;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (strncmp(name, OVERLAY_XATTR_PREFIX, sizeof OVERLAY_XATTR_PREFIX - 1) == 0)
            continue;
        names[kept] = strdup(name);
        values[kept] = malloc(size ? size : 1);
        if (names[kept] == NULL || values[kept] == NULL) {
            kept++;
            goto nomem;
        }
        memcpy(values[kept], value, size);
        sizes[kept++] = size;
    }
    archive_entry_xattr_clear(e);
    for (i = 0; i < kept; i++)
        archive_entry_xattr_add_entry(e, names[i], values[i], sizes[i]);
    for (i = 0; i < kept; i++) {
        free(names[i]);
        free(values[i]);
    }
    free(names);
    free(values);
    free(sizes);
    return 0;
nomem:
    for (i = 0; names != NULL && values != NULL && i < kept; i++) {
        free(names[i]);
        free(values[i]);
    }
    free(names);
    free(values);
    free(sizes);
    return pmd_fail(x->err, ENOMEM, "layer entry", "%s", entry);
}

/* ---- whiteouts ---------------------------------------------------------------------------- */

/*
 * Open the directory rel beneath dest without following any symlink; with create, make the
 * missing components (0755, whatever the umask) and put their parent's times back, since a
 * directory the tar never listed should look as untouched as possible. Returns an fd or -1
 * with errno set.
 */
static int open_dir_beneath(struct extract *x, const char *rel, int create)
{
    char buf[PATH_MAX];
    char *comp, *save = NULL;
    long fd;
    int cur;

    fd = sys_openat2(x->destfd, rel, O_RDONLY | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT || !create)
        return (int)fd;

    snprintf(buf, sizeof buf, "%s", rel);
    cur = fcntl(x->destfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return -1;
    for (comp = strtok_r(buf, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save)) {
        fd = sys_openat2(cur, comp, O_RDONLY | O_DIRECTORY);
        if (fd < 0 && errno == ENOENT) {
            struct stat st;
            struct timespec times[2];

            if (fstat(cur, &st) < 0 || mkdirat(cur, comp, 0755) < 0)
                goto fail;
            times[0] = st.st_atim;
            times[1] = st.st_mtim;
            futimens(cur, times);
            fd = sys_openat2(cur, comp, O_RDONLY | O_DIRECTORY);
            /* mkdirat(2) applied the umask; the mode must not depend on it. */
            if (fd >= 0 && fchmod((int)fd, 0755) < 0) {
                int e = errno;
                close((int)fd);
                errno = e;
                goto fail;
            }
        }
        if (fd < 0)
            goto fail;
        close(cur);
        cur = (int)fd;
    }
    return cur;
fail: {
        int e = errno;
        close(cur);
        errno = e;
        return -1;
    }
}

/* Remove whatever is at dirfd/name, a directory tree included, never following symlinks. */
static int remove_at(int dirfd, const char *name)
{
    DIR *d;
    struct dirent *de;
    int sub, r = 0;

    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR) /* unlink(2) of a directory on Linux */
        return -1;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0)
        return 0;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return -1;
    sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return -1;
    d = fdopendir(sub);
    if (d == NULL) {
        close(sub);
        return -1;
    }
    while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        r = remove_at(sub, de->d_name);
    }
    if (r == 0 && errno != 0)
        r = -1;
    closedir(d);
    if (r < 0)
        return -1;
    return unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* DIR/.wh.NAME: overlayfs hides a lower NAME under a 0/0 character device (see
 * Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"). */
static int whiteout(struct extract *x, const char *dir, const char *name, const char *entry)
{
    int dfd;

    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return pmd_fail(x->err, EPERM, "layer entry", "%s", entry);
    dfd = open_dir_beneath(x, dir, 1);
    if (dfd < 0) {
        if (errno == ELOOP || errno == EXDEV)
            return pmd_fail(x->err, EXDEV, "layer entry", "%s", entry);
        return pmd_fail(x->err, errno, "whiteout", "%s", entry);
    }
    if (remove_at(dfd, name) < 0 || mknodat(dfd, name, S_IFCHR | 0, makedev(0, 0)) < 0) {
        int e = errno;
        close(dfd);
        return pmd_fail(x->err, e, "whiteout", "%s", entry);
    }
    close(dfd);
    return 0;
}

static int opaque_add(struct extract *x, const char *dir, const char *entry)
{
    if (x->nopaque == x->capopaque) {
        size_t cap = x->capopaque ? 2 * x->capopaque : 8;
        char **p = realloc(x->opaque, cap * sizeof *p);

        if (p == NULL)
            return pmd_fail(x->err, ENOMEM, "layer entry", "%s", entry);
        x->opaque = p;
        x->capopaque = cap;
    }
    x->opaque[x->nopaque] = strdup(dir);
    if (x->opaque[x->nopaque] == NULL)
        return pmd_fail(x->err, ENOMEM, "layer entry", "%s", entry);
    x->nopaque++;
    return 0;
}

/*
 * Runs after archive_write_close, which applied the deferred directory modes and times:
 * setting an xattr changes only ctime, so the tar's mtimes survive.
 */
static int opaque_apply(struct extract *x)
{
    size_t i;

    for (i = 0; i < x->nopaque; i++) {
        const char *dir = x->opaque[i];
        int dfd = open_dir_beneath(x, dir, 1);

        if (dfd < 0) {
            if (errno == ELOOP || errno == EXDEV)
                return pmd_fail(x->err, EXDEV, "layer entry", "%s/%s", dir, WH_OPAQUE);
            return pmd_fail(x->err, errno, "opaque dir", "%s", dir);
        }
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
            int e = errno;
            close(dfd);
            return pmd_fail(x->err, e, "opaque dir", "%s", dir);
        }
        close(dfd);
    }
    return 0;
}

/*
 * Handle rel if it is a whiteout; *done tells the caller to skip the entry. The entry's own
 * bytes (a zero-length file, normally) are never written anywhere.
 */
static int handle_whiteout(struct extract *x, const char *rel, const char *entry, int *done)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    char dir[PATH_MAX];

    *done = 0;
    if (strncmp(base, WH_PREFIX, sizeof WH_PREFIX - 1) != 0)
        return 0;
    *done = 1;
    if (slash) {
        memcpy(dir, rel, (size_t)(slash - rel));
        dir[slash - rel] = '\0';
    } else {
        strcpy(dir, ".");
    }
    if (strcmp(base, WH_OPAQUE) == 0)
        return opaque_add(x, dir, entry);
    /* Other .wh..wh.* names are reserved (aufs bookkeeping such as .wh..wh.plnk): skip. */
    if (strncmp(base, WH_META_PREFIX, sizeof WH_META_PREFIX - 1) == 0)
        return 0;
    return whiteout(x, dir, base + sizeof WH_PREFIX - 1, entry);
}

/* ---- entries ------------------------------------------------------------------------------ */

static int disk_fail(struct extract *x, const char *op, const char *entry)
{
    int e = archive_errno(x->disk);

    /* libarchive reports its own refusals (and some short writes) without an errno. */
    return pmd_fail(x->err, e > 0 ? e : EIO, op, "%s", entry);
}

static int copy_data(struct extract *x, const char *entry)
{
    const void *block;
    size_t size;
    la_int64_t off;
    int r;

    for (;;) {
        r = archive_read_data_block(x->inner, &block, &size, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_OK)
            return stream_fail(x, "tar data", entry);
        if (archive_write_data_block(x->disk, block, size, off) < ARCHIVE_OK)
            return disk_fail(x, "write", entry);
    }
}

static int extract_entry(struct extract *x, struct archive_entry *e)
{
    char rel[PATH_MAX], target[PATH_MAX];
    const char *entry = archive_entry_pathname(e);
    const char *link;
    int done, r;

    if (entry == NULL)
        return pmd_fail(x->err, EINVAL, "tar header", "entry %llu has no name",
                        (unsigned long long)x->entries);
    if (clean_name(x, entry, entry, rel, sizeof rel) < 0)
        return -1;
    if (handle_whiteout(x, rel, entry, &done) < 0)
        return -1;
    if (done)
        return 0;
    if (check_parent(x, rel, entry) < 0 || absolute(x, rel, x->abspath, entry) < 0)
        return -1;

    link = archive_entry_hardlink(e);
    if (link != NULL) {
        if (clean_name(x, link, entry, target, sizeof target) < 0 ||
            check_link_target(x, target, entry) < 0 ||
            absolute(x, target, x->abslink, entry) < 0)
            return -1;
        archive_entry_copy_hardlink(e, x->abslink);
    }
    if (drop_overlay_xattrs(x, e, entry) < 0)
        return -1;
    archive_entry_copy_pathname(e, x->abspath);
    /* From here on archive_entry_pathname(e) is the absolute path: report rel. */

    pthread_mutex_lock(&umask_lock);
    r = archive_write_header(x->disk, e);
    pthread_mutex_unlock(&umask_lock);
    if (r < ARCHIVE_OK)
        return disk_fail(x, "create", rel);
    if (archive_entry_size(e) > 0 && copy_data(x, rel) < 0)
        return -1;
    if (archive_write_finish_entry(x->disk) < ARCHIVE_OK)
        return disk_fail(x, "restore metadata", rel);
    return 0;
}

static int extract_all(struct extract *x)
{
    struct archive_entry *e;
    int r;

    for (;;) {
        r = archive_read_next_header(x->inner, &e);
        if (r == ARCHIVE_EOF)
            break;
        /* ARCHIVE_WARN is libarchive tolerating something odd in a header (say an
         * unconvertible name); the policy checks below still see the name it produced. */
        if (r < ARCHIVE_WARN)
            return stream_fail(x, "tar header", NULL);
        x->entries++;
        if (extract_entry(x, e) < 0)
            return -1;
    }
    if (archive_write_close(x->disk) < ARCHIVE_OK)
        return disk_fail(x, "close", "deferred directory metadata");
    if (opaque_apply(x) < 0)
        return -1;
    return stream_drain(x);
}

static void extract_free(struct extract *x)
{
    size_t i;

    if (x->inner)
        archive_read_free(x->inner);
    if (x->outer)
        archive_read_free(x->outer);
    if (x->disk)
        archive_write_free(x->disk);
    if (x->destfd >= 0)
        close(x->destfd);
    EVP_MD_CTX_free(x->zhash);
    EVP_MD_CTX_free(x->thash);
    for (i = 0; i < x->nopaque; i++)
        free(x->opaque[i]);
    free(x->opaque);
    free(x->buf);
    free(x);
}

int pmd_layer_extract(int fd, const char *dest, int compression,
                      struct pmd_extract_result *res, struct pmd_error *err)
{
    struct extract *x;
    int r = -1;

    if (compression != PMD_COMPRESS_NONE && compression != PMD_COMPRESS_GZIP &&
        compression != PMD_COMPRESS_ZSTD)
        return pmd_fail(err, EINVAL, "layer extract", "compression %d", compression);
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return pmd_fail(err, ENOMEM, "layer extract", "%s", dest);
    x->fd = fd;
    x->destfd = -1;
    x->err = err;

    x->buf = malloc(READ_BLOCK);
    if (x->buf == NULL) {
        pmd_fail(err, ENOMEM, "layer extract", "%s", dest);
        goto out;
    }
    if (open_hash(&x->zhash) < 0 || open_hash(&x->thash) < 0) {
        pmd_fail(err, ENOMEM, "sha256", "EVP_DigestInit");
        goto out;
    }
    if (realpath(dest, x->root) == NULL) {
        pmd_fail(err, errno, "realpath", "%s", dest);
        goto out;
    }
    x->rootlen = strlen(x->root);
    /* "/" as dest would make "//name": harmless, but keep the prefix clean. */
    if (x->rootlen == 1)
        x->root[0] = '\0';
    x->destfd = open(x->root[0] ? x->root : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (x->destfd < 0) {
        pmd_fail(err, errno, "open", "%s", dest);
        goto out;
    }

    pthread_mutex_lock(&umask_lock);
    x->disk = archive_write_disk_new();
    pthread_mutex_unlock(&umask_lock);
    if (x->disk == NULL) {
        pmd_fail(err, ENOMEM, "layer extract", "archive_write_disk_new");
        goto out;
    }
    /*
     * No ARCHIVE_EXTRACT_UNLINK: with it SECURE_SYMLINKS deletes a symlink met in the path
     * instead of refusing. No FFLAGS (chattr +i in a layer would pin files on the host), no
     * SECURE_NOABSOLUTEPATHS (we hand libarchive absolute names under dest on purpose).
     * Numeric ids only: no lookup functions, so the host's passwd never maps layer owners.
     */
    archive_write_disk_set_options(x->disk, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                                                ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT);

    if (stream_open(x, compression) < 0 || extract_all(x) < 0)
        goto out;

    hash_hex(x->zhash, res->compressed_digest);
    hash_hex(x->thash, res->diff_id);
    res->compressed_size = x->zsize;
    res->uncompressed_size = x->tsize;
    res->entries = x->entries;
    r = 0;
out:
    extract_free(x);
    return r;
}
