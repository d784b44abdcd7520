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
#include <unistd.h>

struct pmd_error;

/* Record errno `e`, the operation and a printf-style detail in err; always returns -1 so that
 * each call site is one line: `if (x < 0) return pmd_fail(err, errno, "open", "%s", path);` */
int pmd_fail(struct pmd_error *err, int e, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
