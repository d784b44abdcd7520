/*
 * pmd.h: THE boundary between pyminidocker's Python and its C shim.
 *
 * This file is parsed by cffi as the cdef and included by every C source, so it must stay
 * within what both understand: no #include, no include guard, no macros other than integer
 * constants. Rules (see ../shared/ARCHITECTURE.md):
 *   - every entry point returns 0 on success or -1 and fills struct pmd_error;
 *   - only ints, const char *, and the fixed structs below cross the boundary;
 *   - C never returns memory that Python must free.
 */

/* ---- errors ------------------------------------------------------------------------- */

#define PMD_OP_MAX 64
#define PMD_PATH_MAX 1024

struct pmd_error {
    int err;                  /* errno (or EINVAL/EIO for format errors) */
    char op[PMD_OP_MAX];      /* what failed, e.g. "mount", "layer entry" */
    char path[PMD_PATH_MAX];  /* the path or detail it failed on, may be empty */
};

/* ---- layer extraction (extract.c) ---------------------------------------------------- */

#define PMD_COMPRESS_NONE 0
#define PMD_COMPRESS_GZIP 1
#define PMD_COMPRESS_ZSTD 2

struct pmd_extract_result {
    char compressed_digest[72];   /* "sha256:<64 hex>" of the bytes read from fd */
    char diff_id[72];             /* "sha256:<64 hex>" of the uncompressed tar stream */
    uint64_t compressed_size;     /* bytes read from fd */
    uint64_t uncompressed_size;   /* bytes of the uncompressed tar stream */
    uint64_t entries;             /* tar entries processed */
};

/*
 * Extract the layer tar read from fd (until EOF) into the existing, empty directory dest,
 * converting OCI whiteouts to overlayfs ones (.wh.NAME -> 0/0 char device, .wh..wh..opq ->
 * trusted.overlay.opaque=y). Hostile entries (.. components, writes through symlinks, links
 * that leave dest) fail the extraction with EPERM/EXDEV and the entry's name in err->path.
 * The whole stream is read and hashed even past the tar's end-of-archive marker.
 * Releases no resources of the caller: fd stays open.
 */
int pmd_layer_extract(int fd, const char *dest, int compression,
                      struct pmd_extract_result *res, struct pmd_error *err);

/* ---- containers (spawn.c, mount.c, confine.c) ----------------------------------------- */
