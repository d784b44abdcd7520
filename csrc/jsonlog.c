/*
 * jsonlog.c: Docker's json-file log driver format, one JSON object per line:
 *
 *   {"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}
 *
 * The one writer of it: pmd-monitor (detached containers) and pmd_relay_run (attached ones)
 * are both built from this file. No malloc and no stdio buffers: the monitor lives as long as
 * its container, on a few pages.
 */
#include "pmd_sys.h"
#include "jsonlog.h"

#include <time.h>

/*
 * RFC 3339 with nanoseconds in UTC, as Docker writes it: 2024-01-02T03:04:05.123456789Z.
 * The civil date is computed here (days since the epoch to year/month/day, in 400-year eras
 * with March-based years so that the leap day comes last) because glibc's gmtime_r goes through
 * its time zone code, which reads TZ and /etc/localtime and allocates: pages we would keep.
 */
size_t pmd_log_time(char buf[40])
{
    struct timespec ts;
    long long days, secs, era, doe, yoe, doy, mp, y;
    unsigned d, m;

    clock_gettime(CLOCK_REALTIME, &ts);
    days = ts.tv_sec / 86400;
    secs = ts.tv_sec % 86400;
    days += 719468; /* from 1970-01-01 to 0000-03-01 */
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    y = yoe + era * 400 + (m <= 2);
    return (size_t)snprintf(buf, 40, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%09ldZ", y, m, d,
                            secs / 3600, secs / 60 % 60, secs % 60, ts.tv_nsec);
}

/* Docker's json-file rotation: path.(max_file-1) is dropped, each older name moves up one,
 * path becomes path.1, and a new path is opened. On any failure logging goes on in the file
 * that is open (a log that grows is better than a lost one). */
static void rotate(struct pmd_log *log)
{
    char from[4096], to[4096];
    int fd;

    if (log->max_file <= 1) {
        if (ftruncate(log->fd, 0) == 0)
            log->size = 0;
        return;
    }
    for (int i = log->max_file - 1; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof from, "%s", log->path);
        else
            snprintf(from, sizeof from, "%s.%d", log->path, i - 1);
        snprintf(to, sizeof to, "%s.%d", log->path, i);
        if (rename(from, to) < 0 && errno != ENOENT)
            return;
    }
    fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    dup3(fd, log->fd, O_CLOEXEC); /* the same fd number, now the new file */
    close(fd);
    log->size = 0;
}

static void out_flush(struct pmd_log *log)
{
    size_t off = 0;

    if (log->path && log->max_size > 0 && log->size > 0 &&
        log->size + (long long)log->len > log->max_size)
        rotate(log);
    log->size += (long long)log->len;

    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* disk full, ...: the line is lost; there is nobody to tell */
        off += (size_t)n;
    }
    log->len = 0;
}

static void out_put(struct pmd_log *log, const char *p, size_t n)
{
    while (n > 0) {
        size_t k = sizeof log->buf - log->len;
        if (k == 0) {
            out_flush(log);
            continue;
        }
        if (k > n)
            k = n;
        memcpy(log->buf + log->len, p, k);
        log->len += k;
        p += k;
        n -= k;
    }
}

void pmd_log_put(struct pmd_log *log, const char *p, size_t n)
{
    out_put(log, p, n);
}

void pmd_log_flush(struct pmd_log *log)
{
    out_flush(log);
}

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (p[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/*
 * The line as a JSON string: quotes, backslashes and control characters escaped, valid UTF-8
 * kept, each invalid byte replaced by U+FFFD (as Go's encoding/json does, which Docker uses), so
 * the log is valid JSON whatever the container writes.
 */
static void out_json_string(struct pmd_log *log, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i + 1;
            while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\')
                j++;
            out_put(log, (const char *)p + i, j - i);
            i = j;
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            out_put(log, e, 2);
            i++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (c == '\n' || c == '\t' || c == '\r') {
                e[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
                out_put(log, e, 2);
            } else {
                out_put(log, e, 6);
            }
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                out_put(log, "\\ufffd", 6);
                i++;
            } else {
                out_put(log, (const char *)p + i, k);
                i += k;
            }
        }
    }
}

void pmd_log_json(struct pmd_log *log, const unsigned char *p, size_t n)
{
    out_json_string(log, p, n);
}

static void log_line(struct pmd_log *log, struct pmd_log_stream *s, const char *when,
                     size_t when_len)
{
    if (s->len == 0)
        return;
    out_put(log, "{\"log\":\"", 8);
    out_json_string(log, s->line, s->len);
    out_put(log, "\",\"stream\":\"", 12);
    out_put(log, s->name, strlen(s->name));
    out_put(log, "\",\"time\":\"", 10);
    out_put(log, when, when_len);
    out_put(log, "\"}\n", 3);
    out_flush(log); /* one record per write: a reader following the file sees whole lines */
    s->len = 0;
}

void pmd_log_feed(struct pmd_log *log, struct pmd_log_stream *s, const unsigned char *p,
                  size_t n)
{
    char when[40];
    size_t when_len;

    if (log->fd < 0)
        return;
    when_len = pmd_log_time(when); /* the time of the read, for all its lines */
    while (n > 0) {
        const unsigned char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        size_t room = sizeof s->line - s->len;
        int complete = nl != NULL;
        if (take > room) {
            take = room;
            complete = 1;
        }
        memcpy(s->line + s->len, p, take);
        s->len += take;
        p += take;
        n -= take;
        if (complete)
            log_line(log, s, when, when_len);
    }
}

void pmd_log_end(struct pmd_log *log, struct pmd_log_stream *s)
{
    char when[40];

    if (log->fd < 0 || s->len == 0)
        return;
    log_line(log, s, when, pmd_log_time(when));
}
