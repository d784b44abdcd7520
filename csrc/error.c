#include "pmd_sys.h"
#include "pmd.h"

int pmd_fail(struct pmd_error *err, int e, const char *op, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->err = e;
    snprintf(err->op, sizeof err->op, "%s", op);
    va_start(ap, fmt);
    vsnprintf(err->path, sizeof err->path, fmt, ap);
    va_end(ap);
    return -1;
}

/* strlcpy-alike: no locale, no malloc, safe between clone() and execve(). */
static size_t copy_str(char *dst, size_t size, size_t at, const char *src)
{
    if (src == NULL)
        src = "(null)";
    while (*src != '\0' && at + 1 < size)
        dst[at++] = *src++;
    dst[at < size ? at : size - 1] = '\0';
    return at;
}

int pmd_cfail(struct pmd_error *err, int e, const char *op, const char *path)
{
    err->err = e;
    copy_str(err->op, sizeof err->op, 0, op);
    copy_str(err->path, sizeof err->path, 0, path ? path : "");
    return -1;
}

int pmd_cfail2(struct pmd_error *err, int e, const char *op, const char *a, const char *b)
{
    size_t at;

    err->err = e;
    copy_str(err->op, sizeof err->op, 0, op);
    at = copy_str(err->path, sizeof err->path, 0, a);
    at = copy_str(err->path, sizeof err->path, at, " -> ");
    copy_str(err->path, sizeof err->path, at, b);
    return -1;
}
