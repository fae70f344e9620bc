/*
 * STUN Binding load generator (closed loop, UDP, loopback only).
 *
 * N non-blocking UDP sockets, each bound to its own 127.x.y.z source address and connected to
 * the target, each keeping a window of W requests outstanding. Requests are 20-byte Binding
 * requests (RFC 8489 section 5: type 0x0001, length 0, magic cookie 0x2112A442) whose 96-bit
 * transaction id encodes the socket (2 bytes), the window slot (2 bytes) and a per-socket
 * sequence number (8 bytes), so every response is matched to its request without a lookup.
 * Sends and receives are batched with sendmmsg/recvmmsg; one clock reading per batch stamps
 * every packet in it. A request unanswered after --timeout seconds is counted lost and its slot
 * refilled; an answer that arrives after that is counted "late", not as a response.
 *
 * Phases: --warmup seconds (not recorded), --duration seconds (recorded), then a drain of at
 * most --timeout seconds with no new requests, so the answers to the last requests are waited
 * for. An alarm ends the process if anything hangs. Prints one JSON line on stdout.
 *
 *   responses       answers received during the measured interval (throughput numerator)
 *   seconds         length of the measured interval
 *   responses_per_second
 *   p50_us ...      latency of requests sent in the measured interval (1 us resolution)
 *   sent            requests sent in the measured interval
 *   lost            of those, how many got no answer within the timeout
 *   late            answers that came after their request had been declared lost
 *   bad             answers that were not a Binding success response carrying an
 *                   XOR-MAPPED-ADDRESS equal to the socket's own address (e.g. error responses)
 *
 * Build: gcc -O2 -o loadgen loadgen.c      Usage: loadgen --target 127.0.0.1:3478 [options]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC_COOKIE 0x2112A442u
#define BATCH 64
#define RBUF 1500
#define MAX_SOCKETS 250
#define MAX_WINDOW 4096

struct slot {
  uint64_t seq;      /* sequence number of the request in flight */
  uint64_t sent_ns;  /* when it was sent */
  uint8_t busy;      /* 1 while a request is outstanding */
  uint8_t measured;  /* sent during the measured interval */
};

struct sock {
  int fd;
  uint32_t ip;   /* host order */
  uint16_t port; /* host order */
  uint64_t seq;
  struct slot *slots;
  int *free_list;
  int nfree;
  uint8_t (*req)[20];
};

static int nsockets = 8, window = 32;
static double duration = 5.0, warmup = 1.0, timeout_s = 1.0;
static struct sock *socks;

/* Results. */
static uint64_t responses, sent, lost, late, bad;
static uint64_t *hist; /* 1 us buckets, 0 .. hist_len-1 */
static uint64_t hist_len, hist_n, max_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --target IP:PORT [--sockets N] [--window W] [--duration S] [--warmup S]\n"
          "               [--timeout S] [--src FIRST_SOURCE_IP] [--label TEXT]\n"
          "  target and sources must be in 127.0.0.0/8 (loopback only)\n");
  exit(2);
}

static void put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* True when a Binding success response carries XOR-MAPPED-ADDRESS (RFC 8489 section 14.2)
 * equal to this socket's address. Attribute values are padded to 4 bytes (section 14). */
static int mapped_ok(const uint8_t *b, size_t n, const struct sock *s) {
  size_t len = be16(b + 2);
  if (20 + len > n) return 0;
  const uint8_t *p = b + 20, *end = b + 20 + len;
  while (p + 4 <= end) {
    uint16_t type = be16(p), alen = be16(p + 2);
    if (p + 4 + alen > end) return 0;
    if (type == 0x0020 && alen == 8 && p[5] == 0x01) {
      uint16_t port = be16(p + 6) ^ (MAGIC_COOKIE >> 16);
      uint32_t ip = be32(p + 8) ^ MAGIC_COOKIE;
      return port == s->port && ip == s->ip;
    }
    p += 4 + ((alen + 3u) & ~3u);
  }
  return 0;
}

static void record_latency(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us >= hist_len) us = hist_len - 1;
  hist[us]++;
  hist_n++;
  if (ns > max_ns) max_ns = ns;
}

static void handle_response(int si, const uint8_t *b, size_t n, uint64_t t, uint64_t measure_start, uint64_t measure_end) {
  struct sock *s = &socks[si];
  if (n < 20 || be32(b + 4) != MAGIC_COOKIE || (b[0] & 0xc0) != 0) {
    bad++;
    return;
  }
  uint16_t sidx = be16(b + 8), slot = be16(b + 10);
  uint64_t seq = 0;
  for (int i = 0; i < 8; i++) seq = seq << 8 | b[12 + i];
  if (sidx != si || slot >= window) {
    bad++;
    return;
  }
  struct slot *sl = &s->slots[slot];
  if (!sl->busy || sl->seq != seq) {
    late++;
    return;
  }
  sl->busy = 0;
  s->free_list[s->nfree++] = slot;
  if (t >= measure_start && t < measure_end) {
    responses++;
    if (!(be16(b) == 0x0101 && mapped_ok(b, n, s))) bad++;
  }
  if (sl->measured) record_latency(t - sl->sent_ns);
}

/* Sends a request in every free slot of socket si (as many as the kernel takes). */
static void fill_window(int si, uint64_t measure_start, uint64_t measure_end) {
  struct sock *s = &socks[si];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  int slots[BATCH];
  while (s->nfree > 0) {
    int k = s->nfree < BATCH ? s->nfree : BATCH;
    for (int i = 0; i < k; i++) {
      int slot = s->free_list[--s->nfree];
      slots[i] = slot;
      uint8_t *r = s->req[slot];
      uint64_t seq = ++s->seq;
      for (int j = 0; j < 8; j++) r[12 + j] = (uint8_t)(seq >> (56 - 8 * j));
      s->slots[slot].seq = seq;
      iov[i].iov_base = r;
      iov[i].iov_len = 20;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t t = now_ns();
    int m = sendmmsg(s->fd, msgs, (unsigned)k, MSG_DONTWAIT);
    if (m < 0) m = 0; /* EAGAIN, ECONNREFUSED (ICMP from a closed port): retry later */
    int measured = t >= measure_start && t < measure_end;
    for (int i = 0; i < m; i++) {
      struct slot *sl = &s->slots[slots[i]];
      sl->busy = 1;
      sl->sent_ns = t;
      sl->measured = (uint8_t)measured;
    }
    if (measured) sent += (uint64_t)m;
    for (int i = k - 1; i >= m; i--) s->free_list[s->nfree++] = slots[i];
    if (m < k) break;
  }
}

/* Declares requests older than the timeout lost and frees their slots. */
static void expire(uint64_t t, uint64_t timeout_ns) {
  for (int si = 0; si < nsockets; si++) {
    struct sock *s = &socks[si];
    for (int i = 0; i < window; i++) {
      struct slot *sl = &s->slots[i];
      if (sl->busy && t - sl->sent_ns >= timeout_ns) {
        sl->busy = 0;
        if (sl->measured) lost++;
        s->free_list[s->nfree++] = i;
      }
    }
  }
}

static int outstanding(void) {
  int n = 0;
  for (int si = 0; si < nsockets; si++) n += window - socks[si].nfree;
  return n;
}

static uint64_t percentile_us(double p) {
  if (hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_n + 0.999999);
  if (want == 0) want = 1;
  uint64_t c = 0;
  for (uint64_t i = 0; i < hist_len; i++) {
    c += hist[i];
    if (c >= want) return i;
  }
  return hist_len - 1;
}

static int parse_ipv4_loopback(const char *text, uint32_t *ip) {
  struct in_addr a;
  if (inet_pton(AF_INET, text, &a) != 1) return 0;
  *ip = ntohl(a.s_addr);
  return (*ip >> 24) == 127;
}

static void json_escape(const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
}

int main(int argc, char **argv) {
  const char *target = NULL, *label = "", *src = "127.0.2.1";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--target")) target = v;
    else if (!strcmp(a, "--sockets")) nsockets = atoi(v);
    else if (!strcmp(a, "--window")) window = atoi(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--timeout")) timeout_s = atof(v);
    else if (!strcmp(a, "--src")) src = v;
    else if (!strcmp(a, "--label")) label = v;
    else usage();
    i++;
  }
  if (!target || nsockets < 1 || nsockets > MAX_SOCKETS || window < 1 || window > MAX_WINDOW ||
      !(duration > 0) || duration > 3600 || warmup < 0 || warmup > 600 || !(timeout_s > 0) || timeout_s > 60)
    usage();

  char host[64];
  const char *colon = strrchr(target, ':');
  if (!colon || (size_t)(colon - target) >= sizeof host) usage();
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = 0;
  uint32_t tip, sip;
  int tport = atoi(colon + 1);
  if (!parse_ipv4_loopback(host, &tip) || tport < 1 || tport > 65535) {
    fprintf(stderr, "loadgen: target must be 127.x.y.z:PORT (loopback only)\n");
    return 2;
  }
  if (!parse_ipv4_loopback(src, &sip) || ((sip + (uint32_t)nsockets - 1) >> 24) != 127) {
    fprintf(stderr, "loadgen: --src must be a 127.x.y.z address with room for %d sockets\n", nsockets);
    return 2;
  }

  /* Whatever happens, stop: warm-up + duration + drain + a margin. */
  alarm((unsigned)(warmup + duration + timeout_s) + 10);

  hist_len = (uint64_t)(timeout_s * 1e6) + 2;
  hist = calloc(hist_len, sizeof *hist);
  socks = calloc((size_t)nsockets, sizeof *socks);
  struct pollfd *pfd = calloc((size_t)nsockets, sizeof *pfd);
  if (!hist || !socks || !pfd) die("calloc");

  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tport), .sin_addr.s_addr = htonl(tip)};
  for (int si = 0; si < nsockets; si++) {
    struct sock *s = &socks[si];
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) die("socket");
    int sz = 4 << 20;
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0) setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0) setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(sip + (uint32_t)si)};
    if (bind(s->fd, (struct sockaddr *)&from, sizeof from) < 0) die("bind");
    if (connect(s->fd, (struct sockaddr *)&to, sizeof to) < 0) die("connect");
    socklen_t fl = sizeof from;
    if (getsockname(s->fd, (struct sockaddr *)&from, &fl) < 0) die("getsockname");
    s->ip = ntohl(from.sin_addr.s_addr);
    s->port = ntohs(from.sin_port);
    s->slots = calloc((size_t)window, sizeof *s->slots);
    s->free_list = calloc((size_t)window, sizeof *s->free_list);
    s->req = calloc((size_t)window, sizeof *s->req);
    if (!s->slots || !s->free_list || !s->req) die("calloc");
    for (int i = 0; i < window; i++) {
      uint8_t *r = s->req[i];
      put_be16(r, 0x0001); /* Binding request */
      put_be16(r + 2, 0);  /* no attributes */
      put_be32(r + 4, MAGIC_COOKIE);
      put_be16(r + 8, (uint16_t)si);
      put_be16(r + 10, (uint16_t)i);
      s->free_list[s->nfree++] = window - 1 - i;
    }
    pfd[si].fd = s->fd;
    pfd[si].events = POLLIN;
  }

  uint64_t t0 = now_ns();
  uint64_t measure_start = t0 + (uint64_t)(warmup * 1e9);
  uint64_t measure_end = measure_start + (uint64_t)(duration * 1e9);
  uint64_t timeout_ns = (uint64_t)(timeout_s * 1e9);
  uint64_t drain_end = measure_end + timeout_ns + 50000000ull;
  uint64_t next_expire = t0 + 10000000ull;

  static struct mmsghdr rmsgs[BATCH];
  static struct iovec riov[BATCH];
  static uint8_t rbuf[BATCH][RBUF];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = rbuf[i];
    riov[i].iov_len = RBUF;
    rmsgs[i].msg_hdr.msg_iov = &riov[i];
    rmsgs[i].msg_hdr.msg_iovlen = 1;
  }

  for (int si = 0; si < nsockets; si++) fill_window(si, measure_start, measure_end);
  for (;;) {
    uint64_t t = now_ns();
    int sending = t < measure_end;
    if (!sending && (t >= drain_end || outstanding() == 0)) break;
    if (t >= next_expire) {
      expire(t, timeout_ns);
      next_expire = t + 10000000ull;
    }
    int r = poll(pfd, (nfds_t)nsockets, 1);
    if (r < 0 && errno != EINTR) die("poll");
    for (int si = 0; si < nsockets && r > 0; si++) {
      if (!(pfd[si].revents & (POLLIN | POLLERR))) continue;
      /* Take what is queued (a few batches at most, so one busy socket cannot starve the rest). */
      for (int round = 0; round < 4; round++) {
        int m = recvmmsg(socks[si].fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
        if (m <= 0) break; /* EAGAIN, or ECONNREFUSED reported by an ICMP error */
        uint64_t tr = now_ns();
        for (int i = 0; i < m; i++) handle_response(si, rbuf[i], rmsgs[i].msg_len, tr, measure_start, measure_end);
        if (sending) fill_window(si, measure_start, measure_end);
        if (m < BATCH) break;
      }
    }
    if (sending)
      for (int si = 0; si < nsockets; si++)
        if (socks[si].nfree > 0) fill_window(si, measure_start, measure_end);
  }
  expire(now_ns(), 0); /* anything still outstanding after the drain is lost */

  double rps = (double)responses / duration;
  printf("{\"label\":\"");
  json_escape(label);
  printf("\",\"target\":\"%s\",\"sockets\":%d,\"window\":%d,\"seconds\":%.3f,\"responses\":%llu,"
         "\"responses_per_second\":%.0f,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu,"
         "\"sent\":%llu,\"lost\":%llu,\"late\":%llu,\"bad\":%llu}\n",
         target, nsockets, window, duration, (unsigned long long)responses, rps,
         (unsigned long long)percentile_us(0.50), (unsigned long long)percentile_us(0.90),
         (unsigned long long)percentile_us(0.99), (unsigned long long)(max_ns / 1000), (unsigned long long)sent,
         (unsigned long long)lost, (unsigned long long)late, (unsigned long long)bad);
  return 0;
}
