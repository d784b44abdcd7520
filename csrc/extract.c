#include "pmd_sys.h"
#include "pmd.h"

int pmd_layer_extract(int fd, const char *dest, int compression,
                      struct pmd_extract_result *res, struct pmd_error *err)
{
    return pmd_fail(err, ENOSYS, "layer extract", "not implemented yet");
}
