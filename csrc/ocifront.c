/*
 * pmd-runc: the front of pyminidocker-runc (installed as `pyminidocker-runc`, with the Python
 * runtime's launcher next to it as `pyminidocker-runc.py`; see pyminidocker/launcher.py).
 *
 * Why C: containerd's shim runs the OCI runtime four times for one `ctr run --rm`, and the
 * last call, `delete --force ID` of the container its own `delete` has just removed, has no
 * work to do at all. Starting CPython for it (9-11 ms for `python3 -S -c pass` here) costs more
 * than runc's whole call (7 ms). So this front answers that one case by itself, and for every
 * other command line execs the Python runtime with the same argv: a flag, verb or case it does
 * not know is never worded here, so behaviour stays the Python runtime's.
 *
 * The case answered: `[--root R] [--log L] [--log-format text|json] delete --force|-f ID`,
 * R absolute with no "." or ".." component (the Python runtime normalises a root with
 * os.path.abspath, which the kernel's lookup does not), ID a valid runc id, and
 * R/ID/state.json not there (ENOENT): the Python runtime says nothing and exits 0 then
 * (oci/control.py's delete), so this does the same. Anything else, even an error, defers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ROOT "/run/pyminidocker-runc"
#define ID_MAX 1024                /* the Python runtime's bound (oci/state.py check_id) */
#define PY_SUFFIX ".py"

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

/* 1 when argv is `delete --force ID` of a container that does not exist: nothing to do. */
static int gone_delete_force(int argc, char **argv)
{
    const char *root = DEFAULT_ROOT, *format = "text";
    int i = 1;
    for (; i + 1 < argc && argv[i + 1][0] != '-'; i += 2) {
        if (!strcmp(argv[i], "--root"))
            root = argv[i + 1];
        else if (!strcmp(argv[i], "--log-format"))
            format = argv[i + 1];
        else if (strcmp(argv[i], "--log") != 0)
            break;
    }
    if (argc - i != 3 || strcmp(argv[i], "delete") != 0 ||
        (strcmp(argv[i + 1], "--force") != 0 && strcmp(argv[i + 1], "-f") != 0))
        return 0;
    if ((strcmp(format, "text") != 0 && strcmp(format, "json") != 0) ||
        !valid_id(argv[i + 2]) || !plain_root(root))
        return 0;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/state.json", root, argv[i + 2]);
    if (n < 0 || (size_t)n >= sizeof path)
        return 0;
    struct stat sb;
    return stat(path, &sb) < 0 && errno == ENOENT;
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
    if (gone_delete_force(argc, argv))
        return 0;
    return defer(argv);
}
