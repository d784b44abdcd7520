/*
 * pmd-runc: the front of pyminidocker-runc (installed as `pyminidocker-runc`, with the Python
 * runtime's launcher next to it as `pyminidocker-runc.py`; see pyminidocker/launcher.py).
 *
 * Why C: containerd's shim runs the OCI runtime four times for one `ctr run --rm` (create,
 * start, delete, delete --force), and starting CPython alone (9-11 ms for `python3 -S -c pass`
 * here) costs more than runc's whole start (8 ms) or its last delete (7 ms). Two of those calls
 * need nothing Python has, so this front answers them by itself; for every other command line
 * it execs the Python runtime with the same argv: a flag, verb or case it does not know is never
 * worded here, so behaviour stays the Python runtime's.
 *
 * The cases answered, each with `[--root R] [--log L] [--log-format text|json]` before the
 * verb, R absolute with no "." or ".." component (the Python runtime normalises a root with
 * os.path.abspath, which the kernel's lookup does not), ID a valid runc id:
 *  - `delete --force|-f ID` with R/ID/state.json not there (ENOENT): the Python runtime says
 *    nothing and exits 0 then (oci/control.py's delete), so this does the same;
 *  - `start ID` of a container whose holder listens on R/ID/ctl-plain.sock: `create` names
 *    it so when the start is the holder's release alone (a process, no hook: oci/create.py),
 *    so this sends what oci/start.py sends. An "OK" is the whole start. Any other reply (the
 *    process could not be executed), or an I/O error once connected, is handed to the Python
 *    runtime in PMD_RUNC_START_REPLY (oci/start.py) to be worded; a socket that is not there
 *    or refuses (stopped, running, no such container) defers with nothing sent.
 * Anything else, even an error, defers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_ROOT "/run/pyminidocker-runc"
#define ID_MAX 1024                /* the Python runtime's bound (oci/state.py check_id) */
#define PY_SUFFIX ".py"
#define REPLY_ENV "PMD_RUNC_START_REPLY"
#define REPLY_MAX 4096             /* a holder's reply: "OK", or a one-line error */

/* runc's id rule, as oci/state.py check_id: [A-Za-z0-9_+.-]+, not "." or "..". */
static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ID_MAX || !strcmp(id, ".") || !strcmp(id, "..") || id[0] == '-')
        return 0;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.") == n;
}

/* An absolute path without "." or ".." components: the kernel resolves it as abspath would. */
static int plain_root(const char *root)
{
    if (root[0] != '/')
        return 0;
    for (const char *p = root; (p = strchr(p, '/')) != NULL; ) {
        p++;
        size_t len = strcspn(p, "/");
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
    }
    return 1;
}

/* The verb's index in argv after the global flags this front knows, with *root set; 0 when a
 * flag it does not know (or a bad --log-format) comes first: the case is deferred. */
static int verb_index(int argc, char **argv, const char **root)
{
    const char *format = "text";
    int i = 1;
    *root = DEFAULT_ROOT;
    for (; i + 1 < argc && argv[i + 1][0] != '-'; i += 2) {
        if (!strcmp(argv[i], "--root"))
            *root = argv[i + 1];
        else if (!strcmp(argv[i], "--log-format"))
            format = argv[i + 1];
        else if (strcmp(argv[i], "--log") != 0)
            break;
    }
    if (i >= argc || (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) ||
        !plain_root(*root))
        return 0;
    return i;
}

/* 1 when argv[i:] is `delete --force ID` of a container that does not exist: nothing to do. */
static int gone_delete_force(int argc, char **argv, int i, const char *root)
{
    if (argc - i != 3 || strcmp(argv[i], "delete") != 0 ||
        (strcmp(argv[i + 1], "--force") != 0 && strcmp(argv[i + 1], "-f") != 0) ||
        !valid_id(argv[i + 2]))
        return 0;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/state.json", root, argv[i + 2]);
    if (n < 0 || (size_t)n >= sizeof path)
        return 0;
    struct stat sb;
    return stat(path, &sb) < 0 && errno == ENOENT;
}

/* A connection to root/id/ctl-plain.sock, or -1 (nothing sent: defer). Through the
 * directory's /proc/self/fd path, as oci/start.py: root/id/... can pass sun_path's 108 bytes. */
static int connect_plain(const char *root, const char *id)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/%s", root, id);
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/ctl-plain.sock", dfd);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(s);
        s = -1;
    }
    close(dfd);
    return s;
}

/* argv[i:] is `start ID`: 1 when the holder answered "OK" (started); 0 when not this case
 * (nothing sent); -1 when the holder's reply, hex-encoded, or "!" and an errno, is in
 * REPLY_ENV for the Python runtime to word. */
static int plain_start(int argc, char **argv, int i, const char *root)
{
    if (argc - i != 2 || strcmp(argv[i], "start") != 0 || !valid_id(argv[i + 1]))
        return 0;
    int s = connect_plain(root, argv[i + 1]);
    if (s < 0)
        return 0;
    static const char cmd[] = "start";
    char reply[REPLY_MAX];
    size_t len = 0;
    int err = 0;
    if (write(s, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1))
        err = errno ? errno : EIO;
    while (!err && len < sizeof reply) {
        ssize_t r = read(s, reply + len, sizeof reply - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            err = errno;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(s);
    if (!err && len == 2 && !memcmp(reply, "OK", 2))
        return 1;
    char value[2 * REPLY_MAX + 1];
    if (err) {
        snprintf(value, sizeof value, "!%d", err);
    } else {
        for (size_t k = 0; k < len; k++)
            snprintf(value + 2 * k, 3, "%02x", (unsigned char)reply[k]);
        value[2 * len] = '\0';
    }
    setenv(REPLY_ENV, value, 1);
    return -1;
}

/* exec the Python runtime: this executable's own path with ".py", the same argv. */
static int defer(char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - sizeof PY_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof self - sizeof PY_SUFFIX) {
        fprintf(stderr, "pyminidocker-runc: /proc/self/exe: %s\n",
                n < 0 ? strerror(errno) : "path too long");
        return 255;
    }
    memcpy(self + n, PY_SUFFIX, sizeof PY_SUFFIX);
    execv(self, argv);
    fprintf(stderr, "pyminidocker-runc: cannot run %s: %s\n", self, strerror(errno));
    return 255;
}

int main(int argc, char **argv)
{
    const char *root;
    int i = verb_index(argc, argv, &root);
    if (i > 0 && (gone_delete_force(argc, argv, i, root) || plain_start(argc, argv, i, root) > 0))
        return 0;
    return defer(argv);
}
