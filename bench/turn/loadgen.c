/*
 * TURN relay load generator (UDP, loopback only).
 *
 * Mode "relay" (default): for each of --pairs pairs, two TURN clients (clients 2p and 2p+1) each
 * Allocate on the server (RFC 8656 section 7: a 401 answer, then a retry with long-term
 * credentials, RFC 8489 section 9.2: key = MD5(username ":" realm ":" password), and
 * MESSAGE-INTEGRITY = HMAC-SHA1 over the message with its length field covering the attribute,
 * section 14.5), then ChannelBind (RFC 8656 section 11) a channel to the other client's relayed
 * address. Then each client sends to the other through the relay, keeping --window packets in
 * flight per direction, as ChannelData (RFC 8656 section 12.4) or, with --send indication, as
 * Send indications (section 10.1); the relay delivers them to the other client as ChannelData
 * (or Data indications, which are understood too). Both clients live in this process, so the
 * one-way latency (send to receive, one monotonic clock) is measured directly.
 *
 * Mode "bare": no control plane: ChannelData on channel 0x4000 + client index, for the bare
 * forwarder (bench/turn/bare-forwarder.ts). Mode "direct": no server at all, each client sends
 * the bare payload straight to the other's socket (the latency floor of loopback + this program).
 *
 * Mode "alloc": --count clients, each on its own socket and source address (127.1.0.0 + i, so a
 * per-IP limit on 401 answers never applies), Allocate with --concurrency transactions in
 * flight; prints one JSON line when done, then holds the allocations until stdin is closed (or
 * --hold seconds), so that the server's memory can be read meanwhile.
 *
 * Payload (--size bytes, at least 24): 0xB7 0x54, sender client index (2), 4 zero bytes,
 * sequence number (8), send time in ns (8), filler. Packets of one direction are numbered; a
 * loopback path through a single-threaded relay keeps them in order, so when packet s arrives,
 * the earlier ones still in flight are lost (and counted "late" if they come after all). A
 * packet in flight longer than --timeout is lost too. Sends and receives are batched with
 * sendmmsg/recvmmsg; one clock reading per batch.
 *
 * MD5 (RFC 1321), SHA-1 (FIPS 180-4) and HMAC (RFC 2104) are implemented below, so nothing but
 * libc and libm is needed. Build: gcc -O2 -o turn-loadgen loadgen.c -lm
 * Usage: turn-loadgen --server 127.0.0.1:3478 [options]   (--help lists them); prints JSON.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC_COOKIE 0x2112A442u
#define BATCH 64
#define RBUF 2048
#define MAX_CLIENTS 60000
#define MAX_WINDOW 65536

/* ------------------------------------------------------------------------------------------ */
/* MD5, RFC 1321. */

static uint32_t md5_k[64];
static const uint8_t md5_s[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void md5_init_table(void) {
  /* K[i] = floor(|sin(i + 1)| * 2^32), RFC 1321 section 3.4. */
  for (int i = 0; i < 64; i++) md5_k[i] = (uint32_t)(fabs(sin((double)(i + 1))) * 4294967296.0);
}

static void md5_block(uint32_t h[4], const uint8_t *p) {
  uint32_t m[16];
  for (int i = 0; i < 16; i++) m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
  for (int i = 0; i < 64; i++) {
    uint32_t f;
    int g;
    if (i < 16) { f = (b & c) | (~b & d); g = i; }
    else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
    else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
    else { f = c ^ (b | ~d); g = (7 * i) & 15; }
    f += a + md5_k[i] + m[g];
    a = d;
    d = c;
    c = b;
    b += rotl(f, md5_s[i]);
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d;
}

static void md5(const uint8_t *data, size_t len, uint8_t out[16]) {
  uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
  size_t i = 0;
  for (; i + 64 <= len; i += 64) md5_block(h, data + i);
  uint8_t tail[128] = {0};
  size_t rest = len - i;
  memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  size_t tl = rest + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int k = 0; k < 8; k++) tail[tl - 8 + k] = (uint8_t)(bits >> (8 * k)); /* little-endian */
  md5_block(h, tail);
  if (tl == 128) md5_block(h, tail + 64);
  for (int k = 0; k < 4; k++)
    for (int j = 0; j < 4; j++) out[4 * k + j] = (uint8_t)(h[k] >> (8 * j));
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-1, FIPS 180-4 section 6.1, and HMAC-SHA1, RFC 2104. */

struct sha1 {
  uint32_t h[5];
  uint8_t buf[64];
  size_t n;
  uint64_t len;
};

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999u; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1u; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDCu; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6u; }
    uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1_init(struct sha1 *s) {
  static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  memcpy(s->h, iv, sizeof iv);
  s->n = 0;
  s->len = 0;
}

static void sha1_update(struct sha1 *s, const uint8_t *p, size_t len) {
  s->len += len;
  while (len > 0) {
    size_t take = 64 - s->n < len ? 64 - s->n : len;
    memcpy(s->buf + s->n, p, take);
    s->n += take;
    p += take;
    len -= take;
    if (s->n == 64) {
      sha1_block(s->h, s->buf);
      s->n = 0;
    }
  }
}

static void sha1_final(struct sha1 *s, uint8_t out[20]) {
  uint64_t bits = s->len * 8;
  uint8_t pad = 0x80, zero = 0;
  sha1_update(s, &pad, 1);
  while (s->n != 56) sha1_update(s, &zero, 1);
  uint8_t l[8];
  for (int k = 0; k < 8; k++) l[k] = (uint8_t)(bits >> (56 - 8 * k)); /* big-endian */
  sha1_update(s, l, 8);
  for (int k = 0; k < 5; k++)
    for (int j = 0; j < 4; j++) out[4 * k + j] = (uint8_t)(s->h[k] >> (24 - 8 * j));
}

static void hmac_sha1(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[20]) {
  uint8_t k[64] = {0}, pad[64], inner[20];
  struct sha1 s;
  if (klen > 64) {
    sha1_init(&s);
    sha1_update(&s, key, klen);
    sha1_final(&s, k);
  } else {
    memcpy(k, key, klen);
  }
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  sha1_init(&s);
  sha1_update(&s, pad, 64);
  sha1_update(&s, msg, mlen);
  sha1_final(&s, inner);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  sha1_init(&s);
  sha1_update(&s, pad, 64);
  sha1_update(&s, inner, 20);
  sha1_final(&s, out);
}

/* Known answers: RFC 1321 appendix A.5, FIPS 180 "abc", RFC 2202 test case 1. */
static int self_test(void) {
  static const char *want_md5_empty = "d41d8cd98f00b204e9800998ecf8427e";
  static const char *want_md5_long = "57edf4a22be3c955ac49da2e2107b67a"; /* "1234567890" x 8 */
  static const char *want_sha1_abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
  static const char *want_hmac = "b617318655057264e28bc0b6fb378c8ef146be00";
  char hex[41];
  uint8_t d[20];
  int ok = 1;
#define HEX(n) for (int i = 0; i < (n); i++) sprintf(hex + 2 * i, "%02x", d[i])
  md5((const uint8_t *)"", 0, d);
  HEX(16);
  ok &= !strcmp(hex, want_md5_empty);
  const char *l = "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
  md5((const uint8_t *)l, strlen(l), d);
  HEX(16);
  ok &= !strcmp(hex, want_md5_long);
  struct sha1 s;
  sha1_init(&s);
  sha1_update(&s, (const uint8_t *)"abc", 3);
  sha1_final(&s, d);
  HEX(20);
  ok &= !strcmp(hex, want_sha1_abc);
  uint8_t key[20];
  memset(key, 0x0b, 20);
  hmac_sha1(key, 20, (const uint8_t *)"Hi There", 8, d);
  HEX(20);
  ok &= !strcmp(hex, want_hmac);
#undef HEX
  printf("{\"self_test\":%s}\n", ok ? "true" : "false");
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------ */

enum mode { MODE_RELAY, MODE_BARE, MODE_DIRECT, MODE_ALLOC };
enum op { OP_NONE, OP_ALLOCATE = 0x0003, OP_CHANNELBIND = 0x0009 };
enum ctl_state { CTL_IDLE, CTL_WAIT, CTL_DONE, CTL_FAILED };

struct flight {
  uint64_t sent_ns;
  uint8_t measured;
};

struct client {
  int fd;
  uint32_t ip; /* host order */
  uint16_t port;
  uint16_t channel;
  uint32_t relay_ip; /* relayed transport address, from XOR-RELAYED-ADDRESS */
  uint16_t relay_port;
  /* Control plane. */
  int op, state, tries, auth_tries, authed;
  uint8_t tid[12];
  uint64_t sent_at;
  char realm[256], nonce[512];
  uint8_t key[16];
  int error_code;
  /* Data plane, as the sender of one direction: sequence numbers [head, tail) are in flight. */
  uint64_t head, tail;
  struct flight *ring;
  uint8_t *tmpl; /* the packet as sent, payload fields rewritten per packet */
  size_t tmpl_len, payload_off;
};

static enum mode mode = MODE_RELAY;
static int npairs = 1, window = 64, psize = 100, send_indication = 0;
static int count = 10000, concurrency = 256;
static double duration = 5.0, warmup = 1.0, timeout_s = 1.0, hold_s = 600.0, ctl_timeout_s = 20.0;
static const char *username = "bench", *password = "bench";
static struct client *clients;
static int nclients;
static uint32_t server_ip;
static uint16_t server_port;

/* Results. */
static uint64_t delivered, sent, lost, late, bad;
static uint64_t *hist, hist_len, hist_n, max_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "turn-loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void put_be64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i)); }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v = v << 8 | p[i]; return v; }

static int partner(int i) { return i ^ 1; }

static int parse_ipv4_loopback(const char *text, uint32_t *ip) {
  struct in_addr a;
  if (inet_pton(AF_INET, text, &a) != 1) return 0;
  *ip = ntohl(a.s_addr);
  return (*ip >> 24) == 127;
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
  putchar('"');
}

/* A non-blocking UDP socket bound to ip (port 0), connected to to_ip:to_port when to_port != 0. */
static int open_socket(uint32_t ip, uint32_t to_ip, uint16_t to_port, int bufsize, uint16_t *port_out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (bufsize > 0) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(ip)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port_out = ntohs(a.sin_port);
  if (to_port != 0) {
    struct sockaddr_in t = {.sin_family = AF_INET, .sin_port = htons(to_port), .sin_addr.s_addr = htonl(to_ip)};
    if (connect(fd, (struct sockaddr *)&t, sizeof t) < 0) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* ------------------------------------------------------------------------------------------ */
/* Control plane: Allocate and ChannelBind with the long-term credential mechanism. */

static size_t put_attr(uint8_t *buf, size_t p, uint16_t type, const void *value, size_t len) {
  put_be16(buf + p, type);
  put_be16(buf + p + 2, (uint16_t)len);
  memcpy(buf + p + 4, value, len);
  size_t padded = (len + 3) & ~(size_t)3;
  memset(buf + p + 4 + len, 0, padded - len);
  return p + 4 + padded;
}

static void put_xor_address(uint8_t v[8], uint32_t ip, uint16_t port) {
  v[0] = 0;
  v[1] = 0x01; /* IPv4 */
  put_be16(v + 2, port ^ (uint16_t)(MAGIC_COOKIE >> 16));
  put_be32(v + 4, ip ^ MAGIC_COOKIE);
}

/* The request for c->op with a fresh transaction id, signed when credentials are known. */
static size_t build_request(struct client *c, uint8_t *buf) {
  for (int i = 0; i < 12; i++) c->tid[i] = (uint8_t)(rand() >> 7);
  put_be16(buf, (uint16_t)c->op);
  put_be32(buf + 4, MAGIC_COOKIE);
  memcpy(buf + 8, c->tid, 12);
  size_t p = 20;
  if (c->op == OP_ALLOCATE) {
    uint8_t v[4] = {17, 0, 0, 0}; /* REQUESTED-TRANSPORT: UDP */
    p = put_attr(buf, p, 0x0019, v, 4);
  } else if (c->op == OP_CHANNELBIND) {
    uint8_t v[4] = {(uint8_t)(c->channel >> 8), (uint8_t)c->channel, 0, 0};
    p = put_attr(buf, p, 0x000C, v, 4); /* CHANNEL-NUMBER */
    uint8_t a[8];
    struct client *o = &clients[partner((int)(c - clients))];
    put_xor_address(a, o->relay_ip, o->relay_port);
    p = put_attr(buf, p, 0x0012, a, 8); /* XOR-PEER-ADDRESS */
  }
  if (c->authed) {
    p = put_attr(buf, p, 0x0006, username, strlen(username));
    p = put_attr(buf, p, 0x0014, c->realm, strlen(c->realm));
    p = put_attr(buf, p, 0x0015, c->nonce, strlen(c->nonce));
    /* RFC 8489 section 14.5: the length field covers MESSAGE-INTEGRITY when the HMAC is taken. */
    put_be16(buf + 2, (uint16_t)(p - 20 + 24));
    uint8_t mac[20];
    hmac_sha1(c->key, 16, buf, p, mac);
    p = put_attr(buf, p, 0x0008, mac, 20);
  }
  put_be16(buf + 2, (uint16_t)(p - 20));
  return p;
}

static void ctl_send(struct client *c, uint64_t t) {
  uint8_t buf[1024];
  size_t n = build_request(c, buf);
  send(c->fd, buf, n, MSG_DONTWAIT); /* a loss is retried on timeout */
  c->sent_at = t;
  c->tries++;
  c->state = CTL_WAIT;
}

static void ctl_start(struct client *c, int op, uint64_t t) {
  c->op = op;
  c->tries = 0;
  c->auth_tries = 0;
  ctl_send(c, t);
}

/* Copies a string attribute value (REALM, NONCE) into out. */
static void copy_text(char *out, size_t cap, const uint8_t *v, size_t len) {
  if (len >= cap) len = cap - 1;
  memcpy(out, v, len);
  out[len] = 0;
}

/* Handles a datagram for client c in the control phase. */
static void ctl_receive(struct client *c, const uint8_t *b, size_t n, uint64_t t) {
  if (c->state != CTL_WAIT || n < 20 || (b[0] & 0xC0) || be32(b + 4) != MAGIC_COOKIE || memcmp(b + 8, c->tid, 12)) return;
  uint16_t type = be16(b), cls = type & 0x0110;
  size_t len = be16(b + 2);
  if (20 + len > n) return;
  const uint8_t *p = b + 20, *end = b + 20 + len;
  int code = 0, have_nonce = 0;
  while (p + 4 <= end) {
    uint16_t at = be16(p), al = be16(p + 2);
    const uint8_t *v = p + 4;
    if (v + al > end) break;
    if (at == 0x0009 && al >= 4) code = (v[2] & 7) * 100 + v[3]; /* ERROR-CODE */
    else if (at == 0x0014) copy_text(c->realm, sizeof c->realm, v, al);
    else if (at == 0x0015) { copy_text(c->nonce, sizeof c->nonce, v, al); have_nonce = 1; }
    else if (at == 0x0016 && al == 8 && v[1] == 0x01 && c->op == OP_ALLOCATE) { /* XOR-RELAYED-ADDRESS */
      c->relay_port = be16(v + 2) ^ (uint16_t)(MAGIC_COOKIE >> 16);
      c->relay_ip = be32(v + 4) ^ MAGIC_COOKIE;
    }
    p = v + ((al + 3u) & ~3u);
  }
  if (cls == 0x0100) {
    c->state = CTL_DONE;
    return;
  }
  if (cls != 0x0110) return;
  if ((code == 401 || code == 438) && have_nonce && c->auth_tries < 4) {
    /* 401: the challenge (or credentials refused); 438: a new nonce. Key = MD5(user:realm:pass). */
    char material[1024];
    int m = snprintf(material, sizeof material, "%s:%s:%s", username, c->realm, password);
    md5((const uint8_t *)material, (size_t)m, c->key);
    if (code == 401 && c->authed) c->auth_tries += 2; /* refused with credentials: give up soon */
    c->authed = 1;
    c->auth_tries++;
    c->tries = 0;
    ctl_send(c, t);
    return;
  }
  c->error_code = code;
  c->state = CTL_FAILED;
}

/*
 * Runs c->op on clients[first..last) until each is done or failed, retransmitting every 250 ms
 * (7 tries). Returns the number that failed.
 */
static int ctl_run(int first, int last, int op, uint64_t deadline) {
  struct pollfd *pfd = calloc((size_t)(last - first), sizeof *pfd);
  if (!pfd) die("calloc");
  uint64_t t = now_ns();
  for (int i = first; i < last; i++) ctl_start(&clients[i], op, t);
  uint8_t buf[RBUF];
  for (;;) {
    int waiting = 0;
    t = now_ns();
    for (int i = first; i < last; i++) {
      struct client *c = &clients[i];
      if (c->state != CTL_WAIT) continue;
      if (t - c->sent_at > 250000000ull) {
        if (c->tries >= 7) {
          c->state = CTL_FAILED;
          continue;
        }
        ctl_send(c, t);
      }
      pfd[waiting].fd = c->fd;
      pfd[waiting].events = POLLIN;
      waiting++;
    }
    if (waiting == 0 || t > deadline) break;
    if (poll(pfd, (nfds_t)waiting, 50) < 0 && errno != EINTR) die("poll");
    for (int i = first; i < last; i++) {
      struct client *c = &clients[i];
      for (int k = 0; k < 8 && c->state == CTL_WAIT; k++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) break;
        ctl_receive(c, buf, (size_t)n, now_ns());
      }
    }
  }
  free(pfd);
  int failed = 0;
  for (int i = first; i < last; i++)
    if (clients[i].state != CTL_DONE) {
      if (clients[i].state == CTL_WAIT) clients[i].state = CTL_FAILED;
      failed++;
    }
  return failed;
}

static void ctl_report_failure(const char *what, int first, int last) {
  for (int i = first; i < last; i++) {
    if (clients[i].state == CTL_DONE) continue;
    fprintf(stderr, "turn-loadgen: %s failed for client %d: %s %d\n", what, i,
            clients[i].error_code ? "error" : "no answer, tries", clients[i].error_code ? clients[i].error_code : clients[i].tries);
    return;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Data plane. */

static void record_latency(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us >= hist_len) us = hist_len - 1;
  hist[us]++;
  hist_n++;
  if (ns > max_ns) max_ns = ns;
}

static uint64_t percentile_us(double p) {
  if (hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_n + 0.999999), c = 0;
  if (want == 0) want = 1;
  for (uint64_t i = 0; i < hist_len; i++) {
    c += hist[i];
    if (c >= want) return i;
  }
  return hist_len - 1;
}

/* Builds client i's packet template for its mode. */
static void build_template(int i) {
  struct client *c = &clients[i], *o = &clients[partner(i)];
  c->tmpl = calloc(1, (size_t)psize + 64);
  if (!c->tmpl) die("calloc");
  uint8_t *b = c->tmpl;
  size_t off;
  if (mode == MODE_DIRECT) {
    off = 0;
    c->tmpl_len = (size_t)psize;
  } else if (send_indication) {
    /* Send indication (RFC 8656 section 10.1): XOR-PEER-ADDRESS and DATA. */
    put_be16(b, 0x0016);
    put_be32(b + 4, MAGIC_COOKIE);
    for (int k = 8; k < 20; k++) b[k] = (uint8_t)(rand() >> 7);
    uint8_t a[8];
    put_xor_address(a, o->relay_ip, o->relay_port);
    size_t p = put_attr(b, 20, 0x0012, a, 8);
    put_be16(b + p, 0x0013);
    put_be16(b + p + 2, (uint16_t)psize);
    off = p + 4;
    c->tmpl_len = off + (((size_t)psize + 3) & ~(size_t)3);
    put_be16(b + 2, (uint16_t)(c->tmpl_len - 20));
  } else {
    put_be16(b, c->channel);
    put_be16(b + 2, (uint16_t)psize);
    off = 4;
    c->tmpl_len = 4 + (size_t)psize;
  }
  c->payload_off = off;
  uint8_t *pl = b + off;
  memset(pl, 0xA5, (size_t)psize);
  pl[0] = 0xB7; /* not 0x00-0x7F: no relay may take the payload for STUN or ChannelData */
  pl[1] = 0x54;
  put_be16(pl + 2, (uint16_t)i);
  memset(pl + 4, 0, 4);
}

/* Sends as many packets as client i's window allows (and the kernel takes). */
static void fill_window(int i, uint64_t ms, uint64_t me) {
  static uint8_t bufs[BATCH][RBUF];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct client *c = &clients[i];
  while (c->tail - c->head < (uint64_t)window) {
    int k = (int)((uint64_t)window - (c->tail - c->head));
    if (k > BATCH) k = BATCH;
    uint64_t t = now_ns();
    for (int j = 0; j < k; j++) {
      uint8_t *b = bufs[j];
      memcpy(b, c->tmpl, c->tmpl_len);
      uint64_t seq = c->tail + (uint64_t)j;
      put_be64(b + c->payload_off + 8, seq);
      put_be64(b + c->payload_off + 16, t);
      if (send_indication) put_be64(b + 12, seq); /* a distinct transaction id per indication */
      iov[j].iov_base = b;
      iov[j].iov_len = c->tmpl_len;
      memset(&msgs[j], 0, sizeof msgs[j]);
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    int m = sendmmsg(c->fd, msgs, (unsigned)k, MSG_DONTWAIT);
    if (m <= 0) break; /* EAGAIN, or ECONNREFUSED from an ICMP error: retry later */
    int measured = t >= ms && t < me;
    for (int j = 0; j < m; j++) {
      struct flight *f = &c->ring[(c->tail + (uint64_t)j) % (uint64_t)window];
      f->sent_ns = t;
      f->measured = (uint8_t)measured;
    }
    c->tail += (uint64_t)m;
    if (measured) sent += (uint64_t)m;
    if (m < k) break;
  }
}

/* Finds the payload in a datagram received by a client; returns its length or -1. */
static ssize_t find_payload(const uint8_t *b, size_t n, const uint8_t **out) {
  if (mode == MODE_DIRECT) {
    *out = b;
    return (ssize_t)n;
  }
  if (n >= 4 && b[0] >= 0x40 && b[0] <= 0x7F) { /* ChannelData */
    size_t len = be16(b + 2);
    if (4 + len > n) return -1;
    *out = b + 4;
    return (ssize_t)len;
  }
  if (n >= 20 && be16(b) == 0x0117 && be32(b + 4) == MAGIC_COOKIE) { /* Data indication */
    size_t len = be16(b + 2);
    if (20 + len > n) return -1;
    const uint8_t *p = b + 20, *end = b + 20 + len;
    while (p + 4 <= end) {
      uint16_t at = be16(p), al = be16(p + 2);
      if (p + 4 + al > end) return -1;
      if (at == 0x0013) {
        *out = p + 4;
        return al;
      }
      p += 4 + ((al + 3u) & ~3u);
    }
  }
  return -1;
}

static void handle_packet(int r, const uint8_t *b, size_t n, uint64_t t, uint64_t ms, uint64_t me) {
  const uint8_t *pl;
  ssize_t len = find_payload(b, n, &pl);
  int in_window = t >= ms && t < me;
  int s = partner(r);
  if (len < 24 || pl[0] != 0xB7 || pl[1] != 0x54 || be16(pl + 2) != (uint16_t)s) {
    if (in_window) bad++;
    return;
  }
  struct client *c = &clients[s];
  uint64_t seq = be64(pl + 8);
  if (seq < c->head) {
    late++;
    return;
  }
  if (seq >= c->tail) {
    if (in_window) bad++;
    return;
  }
  for (; c->head < seq; c->head++) /* in-order path: whatever was sent before seq is lost */
    if (c->ring[c->head % (uint64_t)window].measured) lost++;
  struct flight *f = &c->ring[seq % (uint64_t)window];
  if (f->measured) record_latency(t - f->sent_ns);
  c->head = seq + 1;
  if (in_window) delivered++;
}

/* Declares packets in flight longer than the timeout lost. */
static void expire(uint64_t t, uint64_t timeout_ns) {
  for (int i = 0; i < nclients; i++) {
    struct client *c = &clients[i];
    while (c->head < c->tail && t - c->ring[c->head % (uint64_t)window].sent_ns >= timeout_ns) {
      if (c->ring[c->head % (uint64_t)window].measured) lost++;
      c->head++;
    }
  }
}

static uint64_t in_flight(void) {
  uint64_t n = 0;
  for (int i = 0; i < nclients; i++) n += clients[i].tail - clients[i].head;
  return n;
}

static void usage(void) {
  fprintf(stderr,
          "usage: turn-loadgen --server IP:PORT [--mode relay|bare|direct|alloc] [--pairs N] [--window W]\n"
          "         [--size BYTES] [--send channel|indication] [--duration S] [--warmup S] [--timeout S]\n"
          "         [--user NAME] [--password P] [--src FIRST_SOURCE_IP] [--label TEXT]\n"
          "         alloc mode: [--count N] [--concurrency C] [--hold S]\n"
          "       turn-loadgen --self-test\n"
          "  the server and every source address must be in 127.0.0.0/8 (loopback only)\n");
  exit(2);
}

static int run_alloc(const char *label, uint32_t src) {
  nclients = count;
  clients = calloc((size_t)nclients, sizeof *clients);
  if (!clients) die("calloc");
  uint64_t t0 = now_ns();
  uint64_t deadline = t0 + (uint64_t)(ctl_timeout_s * 1e9) + (uint64_t)count * 2000000ull; /* + 2 ms each */
  int failed = 0, opened = 0, first_error = 0;
  for (int first = 0; first < nclients; first += concurrency) {
    int last = first + concurrency < nclients ? first + concurrency : nclients;
    for (int i = first; i < last; i++) {
      struct client *c = &clients[i];
      uint32_t ip = src + (uint32_t)i;
      c->ip = ip;
      c->fd = open_socket(ip, server_ip, server_port, 0, &c->port);
      if (c->fd < 0) die("socket (raise the open files limit: ulimit -n)");
      opened++;
    }
    int f = ctl_run(first, last, OP_ALLOCATE, deadline);
    if (f > 0 && failed == 0) {
      ctl_report_failure("Allocate", first, last);
      for (int i = first; i < last && !first_error; i++)
        if (clients[i].state != CTL_DONE) first_error = clients[i].error_code ? clients[i].error_code : -1;
    }
    failed += f;
    if (now_ns() > deadline) break;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  printf("{\"label\":");
  json_string(label);
  printf(",\"mode\":\"alloc\",\"requested\":%d,\"attempted\":%d,\"allocated\":%d,\"failed\":%d,\"first_error\":%d,"
         "\"seconds\":%.3f,\"allocations_per_second\":%.0f}\n",
         count, opened, opened - failed, failed, first_error, secs, secs > 0 ? (opened - failed) / secs : 0.0);
  fflush(stdout);
  /* Hold the allocations (and their sockets) until stdin closes or --hold passes. */
  struct pollfd in = {.fd = 0, .events = POLLIN};
  uint64_t until = now_ns() + (uint64_t)(hold_s * 1e9);
  char sink[256];
  while (now_ns() < until) {
    int r = poll(&in, 1, 100);
    if (r > 0) {
      ssize_t n = read(0, sink, sizeof sink);
      if (n <= 0) break;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *server = NULL, *label = "", *src_text = NULL;
  md5_init_table();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--self-test")) return self_test();
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--server")) server = v;
    else if (!strcmp(a, "--mode")) {
      if (!strcmp(v, "relay")) mode = MODE_RELAY;
      else if (!strcmp(v, "bare")) mode = MODE_BARE;
      else if (!strcmp(v, "direct")) mode = MODE_DIRECT;
      else if (!strcmp(v, "alloc")) mode = MODE_ALLOC;
      else usage();
    } else if (!strcmp(a, "--send")) {
      if (!strcmp(v, "channel")) send_indication = 0;
      else if (!strcmp(v, "indication")) send_indication = 1;
      else usage();
    } else if (!strcmp(a, "--pairs")) npairs = atoi(v);
    else if (!strcmp(a, "--window")) window = atoi(v);
    else if (!strcmp(a, "--size")) psize = atoi(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--timeout")) timeout_s = atof(v);
    else if (!strcmp(a, "--count")) count = atoi(v);
    else if (!strcmp(a, "--concurrency")) concurrency = atoi(v);
    else if (!strcmp(a, "--hold")) hold_s = atof(v);
    else if (!strcmp(a, "--user")) username = v;
    else if (!strcmp(a, "--password")) password = v;
    else if (!strcmp(a, "--src")) src_text = v;
    else if (!strcmp(a, "--label")) label = v;
    else usage();
    i++;
  }
  if ((!server && mode != MODE_DIRECT) || npairs < 1 || npairs > 1000 || window < 1 || window > MAX_WINDOW || psize < 24 ||
      psize > 1400 || !(duration > 0) || duration > 3600 || warmup < 0 || warmup > 600 || !(timeout_s > 0) || timeout_s > 60 ||
      count < 1 || count > MAX_CLIENTS || concurrency < 1 || concurrency > 4096 || hold_s < 0 || hold_s > 3600 ||
      strlen(username) > 200 || strlen(password) > 200)
    usage();
  if (send_indication && mode != MODE_RELAY) {
    fprintf(stderr, "turn-loadgen: --send indication needs --mode relay\n");
    return 2;
  }
  if (server) {
    char host[64];
    const char *colon = strrchr(server, ':');
    if (!colon || (size_t)(colon - server) >= sizeof host) usage();
    memcpy(host, server, (size_t)(colon - server));
    host[colon - server] = 0;
    int port = atoi(colon + 1);
    if (!parse_ipv4_loopback(host, &server_ip) || port < 1 || port > 65535) {
      fprintf(stderr, "turn-loadgen: --server must be 127.x.y.z:PORT (loopback only)\n");
      return 2;
    }
    server_port = (uint16_t)port;
  }
  uint32_t src;
  if (!parse_ipv4_loopback(src_text ? src_text : (mode == MODE_ALLOC ? "127.1.0.1" : "127.0.3.1"), &src)) {
    fprintf(stderr, "turn-loadgen: --src must be a 127.x.y.z address\n");
    return 2;
  }
  srand((unsigned)(now_ns() ^ (uint64_t)getpid()));

  if (mode == MODE_ALLOC) {
    if (((src + (uint32_t)count - 1) >> 24) != 127) {
      fprintf(stderr, "turn-loadgen: --src leaves no room for %d addresses in 127.0.0.0/8\n", count);
      return 2;
    }
    alarm((unsigned)(ctl_timeout_s + count * 0.002 + hold_s) + 30);
    return run_alloc(label, src);
  }

  /* Whatever happens, stop: control plane + warm-up + duration + drain + a margin. */
  alarm((unsigned)(ctl_timeout_s + warmup + duration + timeout_s) + 10);

  nclients = 2 * npairs;
  clients = calloc((size_t)nclients, sizeof *clients);
  hist_len = (uint64_t)(timeout_s * 1e6) + 2;
  hist = calloc(hist_len, sizeof *hist);
  struct pollfd *pfd = calloc((size_t)nclients, sizeof *pfd);
  if (!clients || !hist || !pfd) die("calloc");
  for (int i = 0; i < nclients; i++) {
    struct client *c = &clients[i];
    c->ip = src + (uint32_t)(i / 2); /* both clients of a pair on one address, as two ports of a host */
    c->channel = (uint16_t)(0x4000 + (i & 0xFFF));
    c->fd = open_socket(c->ip, server_ip, mode == MODE_DIRECT ? 0 : server_port, 4 << 20, &c->port);
    if (c->fd < 0) die("socket");
    c->ring = calloc((size_t)window, sizeof *c->ring);
    if (!c->ring) die("calloc");
  }
  uint64_t tc = now_ns();
  if (mode == MODE_DIRECT) {
    for (int i = 0; i < nclients; i++) {
      struct client *o = &clients[partner(i)];
      struct sockaddr_in t = {.sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr.s_addr = htonl(o->ip)};
      if (connect(clients[i].fd, (struct sockaddr *)&t, sizeof t) < 0) die("connect");
    }
  } else if (mode == MODE_RELAY) {
    uint64_t deadline = tc + (uint64_t)(ctl_timeout_s * 1e9);
    if (ctl_run(0, nclients, OP_ALLOCATE, deadline) > 0) {
      ctl_report_failure("Allocate", 0, nclients);
      return 1;
    }
    if (ctl_run(0, nclients, OP_CHANNELBIND, deadline) > 0) {
      ctl_report_failure("ChannelBind", 0, nclients);
      return 1;
    }
  } else { /* bare: tell the forwarder where each client is (a ChannelData with no data) */
    for (int k = 0; k < 3; k++)
      for (int i = 0; i < nclients; i++) {
        uint8_t hello[4];
        put_be16(hello, clients[i].channel);
        put_be16(hello + 2, 0);
        send(clients[i].fd, hello, 4, MSG_DONTWAIT);
      }
    usleep(100000);
    uint8_t sink[RBUF];
    for (int i = 0; i < nclients; i++)
      while (recv(clients[i].fd, sink, sizeof sink, MSG_DONTWAIT) >= 0) {
      }
  }
  double ctl_ms = (double)(now_ns() - tc) / 1e6;
  for (int i = 0; i < nclients; i++) {
    build_template(i);
    pfd[i].fd = clients[i].fd;
    pfd[i].events = POLLIN;
  }

  static struct mmsghdr rmsgs[BATCH];
  static struct iovec riov[BATCH];
  static uint8_t rbuf[BATCH][RBUF];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = rbuf[i];
    riov[i].iov_len = RBUF;
    rmsgs[i].msg_hdr.msg_iov = &riov[i];
    rmsgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t t0 = now_ns();
  uint64_t ms = t0 + (uint64_t)(warmup * 1e9), me = ms + (uint64_t)(duration * 1e9);
  uint64_t timeout_ns = (uint64_t)(timeout_s * 1e9), drain_end = me + timeout_ns + 50000000ull, next_expire = t0 + 10000000ull;
  double cpu_start = -1, cpu_end = -1;
  for (int i = 0; i < nclients; i++) fill_window(i, ms, me);
  for (;;) {
    uint64_t t = now_ns();
    int sending = t < me;
    if (cpu_start < 0 && t >= ms) cpu_start = cpu_seconds();
    if (cpu_end < 0 && t >= me) cpu_end = cpu_seconds();
    if (!sending && (t >= drain_end || in_flight() == 0)) break;
    if (t >= next_expire) {
      expire(t, timeout_ns);
      next_expire = t + 10000000ull;
    }
    int r = poll(pfd, (nfds_t)nclients, 1);
    if (r < 0 && errno != EINTR) die("poll");
    for (int i = 0; i < nclients && r > 0; i++) {
      if (!(pfd[i].revents & (POLLIN | POLLERR))) continue;
      for (int round = 0; round < 4; round++) {
        int m = recvmmsg(clients[i].fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
        if (m <= 0) break;
        uint64_t tr = now_ns();
        for (int j = 0; j < m; j++) handle_packet(i, rbuf[j], rmsgs[j].msg_len, tr, ms, me);
        if (sending) fill_window(partner(i), ms, me);
        if (m < BATCH) break;
      }
    }
    if (sending)
      for (int i = 0; i < nclients; i++)
        if (clients[i].tail - clients[i].head < (uint64_t)window) fill_window(i, ms, me);
  }
  expire(now_ns(), 0); /* anything still in flight after the drain is lost */
  if (cpu_end < 0) cpu_end = cpu_seconds();

  double pps = (double)delivered / duration;
  printf("{\"label\":");
  json_string(label);
  printf(",\"mode\":\"%s\",\"send\":\"%s\",\"pairs\":%d,\"window\":%d,\"size\":%d,\"seconds\":%.3f,\"control_ms\":%.1f,"
         "\"delivered\":%llu,\"packets_per_second\":%.0f,\"payload_mbps\":%.2f,\"p50_us\":%llu,\"p90_us\":%llu,"
         "\"p99_us\":%llu,\"max_us\":%llu,\"sent\":%llu,\"lost\":%llu,\"late\":%llu,\"bad\":%llu,\"loadgen_cpu\":%.3f}\n",
         mode == MODE_RELAY ? "relay" : mode == MODE_BARE ? "bare" : "direct", send_indication ? "indication" : "channel", npairs,
         window, psize, duration, ctl_ms, (unsigned long long)delivered, pps, pps * psize * 8 / 1e6,
         (unsigned long long)percentile_us(0.50), (unsigned long long)percentile_us(0.90), (unsigned long long)percentile_us(0.99),
         (unsigned long long)(max_ns / 1000), (unsigned long long)sent, (unsigned long long)lost, (unsigned long long)late,
         (unsigned long long)bad, cpu_start >= 0 ? (cpu_end - cpu_start) / duration : -1.0);
  return 0;
}
