/* jsonlog.h: Docker's json-file log, written by pmd-monitor for detached containers and by
 * pmd_relay_run for attached ones (internal; not part of the cdef). Include after pmd_sys.h. */
#ifndef PMD_JSONLOG_H
#define PMD_JSONLOG_H

#define PMD_LOG_LINE_MAX (16 * 1024) /* a longer line is logged in pieces, as Docker does */
#define PMD_LOG_BUF (8 * 1024)

/* The log file: each record goes out in one write(2), so a reader following it sees whole
 * lines. Zero-initialized, then fd set (-1: nothing is logged). */
struct pmd_log {
    int fd;
    size_t len;
    /* Rotation (--log-opt max-size/max-file, as Docker's json-file): with max_size > 0, a
     * write that would take the file past it first renames path to path.1 (path.1 to path.2,
     * ... keeping max_file - 1 of them; max_file 1 truncates instead) and starts a new file.
     * size is what the file holds. path NULL: no rotation. */
    const char *path;
    long long max_size;
    int max_file;
    long long size;
    char buf[PMD_LOG_BUF];
};

/* One stream's line being assembled; set up with pmd_log_stream_init. */
struct pmd_log_stream {
    const char *name; /* the record's "stream": "stdout" or "stderr" */
    size_t len;
    unsigned char line[PMD_LOG_LINE_MAX];
};

/* Field by field: assigning a whole struct would write (and so make resident) its line buffer,
 * 16 KiB of PSS per stream that a container with short lines never needs. */
static inline void pmd_log_stream_init(struct pmd_log_stream *s, const char *name)
{
    s->name = name;
    s->len = 0;
}

/* Now, in RFC 3339 with nanoseconds in UTC, as Docker writes it; returns the length. */
size_t pmd_log_time(char buf[40]);

/* Log what was read from s (n bytes at p): one record per line, the '\n' included, all with
 * the time of this call; a line that fills s->line is logged as it is and the rest follows as
 * the next record; an unfinished line waits for more. */
void pmd_log_feed(struct pmd_log *log, struct pmd_log_stream *s, const unsigned char *p,
                  size_t n);

/* Other JSON through the same buffer (the monitor's health record): raw bytes, a string's
 * contents escaped as the log's (without the quotes), and the final write. */
void pmd_log_put(struct pmd_log *log, const char *p, size_t n);
void pmd_log_json(struct pmd_log *log, const unsigned char *p, size_t n);
void pmd_log_flush(struct pmd_log *log);

/* The stream has ended: log its unfinished line, if any. */
void pmd_log_end(struct pmd_log *log, struct pmd_log_stream *s);

#endif
