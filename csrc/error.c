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
