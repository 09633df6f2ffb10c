/* hfload: a tiny closed-loop HTTP/1.1 keep-alive load generator (wrk-like, loopback only).

   N connections, one epoll loop, one thread. Each connection sends a prebuilt request, waits
   for the whole response (status line, Content-Length or chunked body), records the latency
   and sends the next one: closed loop, like wrk. Bodies given with several --body-file flags
   are used in turn. After --warmup seconds of unrecorded load, --duration seconds are
   measured; requests still unanswered --grace seconds after that are cut off.

   Prints one JSON object on stdout: requests, errors (non-2xx answers, connection errors),
   status counts, latency percentiles and a log2 histogram (microseconds), and the CPU this
   process used per request (so a reader can tell the client is not the bottleneck).

   Build: cc -O2 -o hfload hfload.c
   Run:   hfload --port 3000 --path /v1/models/m:predict --body-file b.json -c 64 -d 10
   Written for benchmarks/cload.py; kept dependency-free on purpose (no libc extensions
   beyond Linux epoll). */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODIES 64
#define MAX_HEADERS 16
#define READ_CHUNK 65536
#define HIST_BUCKETS 40
#define ERROR_SAMPLE 300

typedef struct {
    char *data;
    size_t len;
} buf_t;

enum { IDLE, SENDING, READING, CLOSED };

typedef struct {
    int fd;
    int state;
    int index;     /* which connection */
    buf_t *req;    /* request being sent */
    size_t sent;
    char *in;      /* response bytes so far */
    size_t in_len, in_cap;
    double started;
    long long count;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *msg) {
    fprintf(stderr, "hfload: %s (%s)\n", msg, strerror(errno));
    exit(2);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open a body file");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(size + 1);
    if (fread(data, 1, size, f) != (size_t)size) die("cannot read a body file");
    fclose(f);
    data[size] = 0;
    *len = size;
    return data;
}

/* ------------------------------------------------------------------ results */

static uint32_t *samples; /* latencies in microseconds, measured window only */
static size_t n_samples, cap_samples;
static long long hist[HIST_BUCKETS];
static long long errors, cut_off, status_counts[6];
static char error_sample[ERROR_SAMPLE + 1];
static int recording;

static void record(double seconds) {
    if (!recording) return;
    if (n_samples == cap_samples) {
        cap_samples = cap_samples ? cap_samples * 2 : 65536;
        samples = realloc(samples, cap_samples * sizeof *samples);
        if (!samples) die("out of memory");
    }
    double us = seconds * 1e6;
    uint32_t v = us > 4e9 ? 4000000000u : (uint32_t)us;
    samples[n_samples++] = v;
    int b = 0;
    while ((1u << b) <= v && b < HIST_BUCKETS - 1) b++;
    hist[b]++;
}

static void note_error(const char *text, size_t len) {
    if (!recording) return;
    errors++;
    if (!error_sample[0]) {
        size_t n = len < ERROR_SAMPLE ? len : ERROR_SAMPLE;
        for (size_t i = 0; i < n; i++) {
            char c = text[i];
            error_sample[i] = (c == '"' || c == '\\' || (unsigned char)c < 32) ? ' ' : c;
        }
        error_sample[n] = 0;
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!n_samples) return -1;
    double rank = (n_samples - 1) * q / 100.0;
    size_t lo = (size_t)rank, hi = lo + 1 < n_samples ? lo + 1 : lo;
    return (samples[lo] + (samples[hi] - (double)samples[lo]) * (rank - lo)) / 1000.0;
}

/* ------------------------------------------------------------------ connections */

static struct sockaddr_in addr;
static int epfd;
static buf_t requests[MAX_BODIES];
static int n_requests;
static long long issued;

static void conn_open(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->in_len = 0;
}

static void conn_close(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
}

static void want(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void start_request(conn_t *c) {
    c->req = &requests[(c->index + c->count * 7) % n_requests];
    c->count++;
    issued++;
    c->sent = 0;
    c->in_len = 0;
    c->started = now_s();
    c->state = SENDING;
    want(c, EPOLLOUT);
}

static int line_has(const char *line, const char *eol, const char *word) {
    size_t n = strlen(word);
    for (const char *p = line; p + n <= eol; p++)
        if (!strncasecmp(p, word, n)) return 1;
    return 0;
}

/* Returns the full response length when `in` holds a complete response, 0 when more is
   needed, -1 on a malformed one. Sets *status and *keep_alive. */
static long response_length(const char *in, size_t len, int *status, int *keep_alive) {
    const char *end = memmem(in, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = end - in + 4;
    if (len < 12 || memcmp(in, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(in + 9);
    *keep_alive = 1;
    long content_length = -1;
    int chunked = 0;
    const char *line = memchr(in, '\n', head);
    while (line && line + 1 < in + head) {
        line++;
        const char *eol = memchr(line, '\n', in + head - line);
        if (!eol) break;
        if (!strncasecmp(line, "content-length:", 15)) content_length = atol(line + 15);
        else if (!strncasecmp(line, "transfer-encoding:", 18)) chunked = line_has(line, eol, "chunked");
        else if (!strncasecmp(line, "connection:", 11) && line_has(line, eol, "close")) *keep_alive = 0;
        line = eol;
    }
    if (content_length >= 0) return len >= head + content_length ? (long)(head + content_length) : 0;
    if (!chunked) return -1; /* no length: this generator needs one */
    size_t pos = head;
    for (;;) { /* chunk-size CRLF data CRLF ... 0 CRLF CRLF */
        const char *eol = memmem(in + pos, len - pos, "\r\n", 2);
        if (!eol) return 0;
        long size = strtol(in + pos, NULL, 16);
        pos = eol - in + 2;
        if (size == 0) return len >= pos + 2 ? (long)(pos + 2) : 0;
        pos += size + 2;
        if (pos > len) return 0;
    }
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
    fprintf(stderr,
            "usage: hfload --port P --path PATH [--host 127.0.0.1] [--method POST]\n"
            "              [--body-file F]... [--header 'K: V']... [-c N] [-d SECONDS]\n"
            "              [--warmup SECONDS] [--grace SECONDS] [--max-requests N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = NULL, *method = "POST";
    const char *body_files[MAX_BODIES], *headers[MAX_HEADERS];
    int n_bodies = 0, n_headers = 0, port = 0, connections = 1;
    double duration = 5, warmup = 0, grace = 30;
    long long max_requests = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--method")) method = v;
        else if (!strcmp(a, "--body-file") && n_bodies < MAX_BODIES) body_files[n_bodies++] = v;
        else if (!strcmp(a, "--header") && n_headers < MAX_HEADERS) headers[n_headers++] = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--connections")) connections = atoi(v);
        else if (!strcmp(a, "-d") || !strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--grace")) grace = atof(v);
        else if (!strcmp(a, "--max-requests")) max_requests = atoll(v);
        else usage();
        i++;
    }
    if (!port || !path || connections < 1) usage();
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("host must be an IPv4 address");
    if (ntohl(addr.sin_addr.s_addr) >> 24 != 127) {
        fprintf(stderr, "hfload: load only goes to loopback addresses, not %s\n", host);
        return 2;
    }

    /* Prebuilt requests: one per body (a bodiless GET when none). */
    int count = n_bodies ? n_bodies : 1;
    for (int b = 0; b < count; b++) {
        size_t body_len = 0;
        char *body = n_bodies ? read_file(body_files[b], &body_len) : NULL;
        size_t cap = 1024 + strlen(path) + body_len;
        for (int h = 0; h < n_headers; h++) cap += strlen(headers[h]) + 2;
        char *req = malloc(cap);
        int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path, host, port);
        for (int h = 0; h < n_headers; h++) n += snprintf(req + n, cap - n, "%s\r\n", headers[h]);
        if (body)
            n += snprintf(req + n, cap - n,
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
        n += snprintf(req + n, cap - n, "\r\n");
        if (body) {
            memcpy(req + n, body, body_len);
            n += body_len;
            free(body);
        }
        requests[b].data = req;
        requests[b].len = n;
    }
    n_requests = count;

    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conn_t *conns = calloc(connections, sizeof *conns);
    for (int i = 0; i < connections; i++) {
        conns[i].index = i;
        conns[i].in_cap = READ_CHUNK;
        conns[i].in = malloc(READ_CHUNK);
        conn_open(&conns[i]);
        start_request(&conns[i]);
    }

    double t0 = now_s();
    double measure_from = t0 + warmup, stop_at = measure_from + duration;
    double measured_start = warmup > 0 ? 0 : t0, cpu_start = warmup > 0 ? 0 : cpu_s();
    long long issued_at_start = 0;
    recording = warmup <= 0;
    int active = connections;
    struct epoll_event events[256];
    while (active > 0) {
        double t = now_s();
        if (!recording && t >= measure_from) {
            recording = 1;
            measured_start = t;
            cpu_start = cpu_s();
            issued_at_start = issued;
        }
        if (t >= stop_at + grace) break;
        int n = epoll_wait(epfd, events, 256, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (c->state == SENDING) {
                ssize_t w = write(c->fd, c->req->data + c->sent, c->req->len - c->sent);
                if (w < 0 && (errno == EAGAIN || errno == EINPROGRESS)) continue;
                if (w <= 0) goto failed;
                c->sent += w;
                if (c->sent == c->req->len) {
                    c->state = READING;
                    want(c, EPOLLIN);
                }
                continue;
            }
            if (c->state != READING) continue;
            for (;;) {
                if (c->in_cap - c->in_len < READ_CHUNK / 2) {
                    c->in_cap *= 2;
                    c->in = realloc(c->in, c->in_cap);
                }
                ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) goto failed;
                c->in_len += r;
            }
            {
                int status = 0, keep_alive = 1;
                long full = response_length(c->in, c->in_len, &status, &keep_alive);
                if (full == 0) continue;
                if (full < 0) goto failed;
                double done = now_s();
                if (status >= 200 && status < 300) record(done - c->started);
                else note_error(c->in, c->in_len);
                if (recording && status >= 100 && status < 600) status_counts[status / 100]++;
                if (done >= stop_at || (max_requests >= 0 && issued >= max_requests)) {
                    conn_close(c);
                    c->state = CLOSED;
                    active--;
                    continue;
                }
                if (!keep_alive) {
                    conn_close(c);
                    conn_open(c);
                }
                start_request(c);
            }
            continue;
        failed:
            note_error("connection error", 16);
            conn_close(c);
            if (now_s() >= stop_at) {
                c->state = CLOSED;
                active--;
            } else {
                conn_open(c);
                start_request(c);
            }
        }
    }
    double end = now_s();
    double cpu_used = cpu_s() - cpu_start;
    if (!recording) measured_start = end;
    /* The measured wall time: to the deadline (or the end when it came first). */
    double measured = end - measured_start; /* to the last answer, as benchmarks/loadgen.py */
    cut_off = active;

    qsort(samples, n_samples, sizeof *samples, cmp_u32);
    double sum = 0;
    for (size_t i = 0; i < n_samples; i++) sum += samples[i];
    long long attempted = (long long)n_samples + errors;
    printf("{\"tool\": \"hfload\", \"concurrency\": %d, \"requests\": %zu, \"errors\": %lld, "
           "\"cut_off\": %lld, \"wall_s\": %.4f, \"throughput_rps\": %.2f, ",
           connections, n_samples, errors, cut_off, measured,
           measured > 0 ? n_samples / measured : 0.0);
    printf("\"mean_ms\": %.3f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p95_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, ",
           n_samples ? sum / n_samples / 1000.0 : -1.0, pct(50), pct(90), pct(95), pct(99),
           pct(99.9), n_samples ? samples[n_samples - 1] / 1000.0 : -1.0);
    printf("\"client_cpu_ms_per_request\": %.4f, \"issued_in_window\": %lld, ",
           attempted ? 1000.0 * cpu_used / attempted : 0.0, issued - issued_at_start);
    printf("\"status_counts\": {\"1xx\": %lld, \"2xx\": %lld, \"3xx\": %lld, \"4xx\": %lld, "
           "\"5xx\": %lld}, ",
           status_counts[1], status_counts[2], status_counts[3], status_counts[4],
           status_counts[5]);
    printf("\"latency_log2_us_histogram\": [");
    for (int b = 0; b < HIST_BUCKETS; b++) printf("%s%lld", b ? ", " : "", hist[b]);
    printf("], \"error_sample\": \"%s\"}\n", error_sample);
    return 0;
}
