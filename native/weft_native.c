/*
 * weft_native: the few system calls Node.js cannot make itself.
 *
 *   - attach to (or create) a TAP device, optionally inside another network namespace;
 *   - read and write many frames per call on a non-blocking fd (TAP), and with the
 *     virtio-net header: cut the TCP super-frames a VM hands over into segments, and join
 *     the segments of a flow into super-frames for it, checksums finished in the same pass;
 *   - receive and send many UDP datagrams per call (recvmmsg/sendmmsg), runs of them as one
 *     (UDP GSO and GRO);
 *   - open a raw packet socket (AF_PACKET) on a host interface, for provider networks, and
 *     receive many frames per call with their VLAN tags put back;
 *   - watch an fd for readability on libuv's event loop (uv_poll), so no read ever
 *     blocks a thread-pool thread;
 *   - seal and open tunnel datagrams with ChaCha20-Poly1305, through the OpenSSL that
 *     Node.js itself is built with (node:crypto would allocate a cipher object per packet).
 *
 * All packet memory belongs to JavaScript: every call takes a Uint8Array and offsets into
 * it, and no pointer to it is kept after the call returns. All logic (what to read, where
 * to send, what a failure means) stays in TypeScript; these functions report errno values
 * and let the caller decide.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <openssl/evp.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Implementation limit: frames per batch call. Callers pass fewer. */
#define MAX_BATCH 256

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, "EINTERNAL", "weft_native: " #call);      \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error, errnum;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  /* code is the symbolic errno where we know it, else "E" + number */
  const char *name = NULL;
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EPERM: name = "EPERM"; break;
    case EACCES: name = "EACCES"; break;
    case EBUSY: name = "EBUSY"; break;
    case EINVAL: name = "EINVAL"; break;
    case EADDRINUSE: name = "EADDRINUSE"; break;
    case EADDRNOTAVAIL: name = "EADDRNOTAVAIL"; break;
    case ENODEV: name = "ENODEV"; break;
    default: break;
  }
  char buf[16];
  if (name == NULL) {
    snprintf(buf, sizeof buf, "E%d", err);
    name = buf;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* Returns the data pointer and length of a typed array (any element type, in bytes). */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  size_t count, offset;
  napi_value ab;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) != napi_ok) return 0;
  size_t width = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: width = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: width = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: width = 8; break;
    default: width = 1;
  }
  *data = p;
  *len = count * width;
  return 1;
}

/* A call's result: a 32-bit integer (a count, a length, an fd). */
static napi_value int32_result(napi_env env, int32_t v) {
  napi_value out;
  CHECK(napi_create_int32(env, v, &out));
  return out;
}

/* ---- network namespaces ---------------------------------------------------------------- */

/* Enters the namespace at `path` for the calling thread; *saved receives the old one. */
static int enter_netns(const char *path, int *saved) {
  *saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*saved < 0) return errno;
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(*saved);
    return err;
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  close(target);
  if (rc < 0) {
    close(*saved);
    return err;
  }
  return 0;
}

static void leave_netns(int saved) {
  if (setns(saved, CLONE_NEWNET) < 0) {
    /* Staying in the wrong namespace would silently misroute every later socket. */
    perror("weft_native: cannot return to the original network namespace");
    abort();
  }
  close(saved);
}

/*
 * Reads the (name: string, netnsPath: string | null) arguments of calls about an interface,
 * and enters the namespace when one is given (*saved is then the namespace to leave_netns
 * to, else -1). Returns 0 with a JavaScript exception pending when it cannot.
 */
static int name_in_netns(napi_env env, napi_value *argv, char name[IFNAMSIZ], int *saved) {
  size_t n = 0;
  napi_valuetype t;
  *saved = -1;
  if (napi_get_value_string_utf8(env, argv[0], name, IFNAMSIZ, &n) != napi_ok || napi_typeof(env, argv[1], &t) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "weft_native: expected (name: string, netnsPath: string | null)");
    return 0;
  }
  if (t != napi_string) return 1;
  char nspath[512] = {0};
  if (napi_get_value_string_utf8(env, argv[1], nspath, sizeof nspath, &n) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "weft_native: netnsPath must be a string");
    return 0;
  }
  int err = enter_netns(nspath, saved);
  if (err) {
    throw_errno(env, "entering network namespace", err);
    return 0;
  }
  return 1;
}

/* ---- batch arguments --------------------------------------------------------------------- */

/* A batch read's arguments: (fd, buf, base, stride, capacity, max, lengths: Int32Array). */
struct read_args {
  int32_t fd, base, stride, capacity, max;
  uint8_t *buf;
  int32_t *lens;
};

/*
 * Reads a batch read's arguments for `call`, clamping max to MAX_BATCH and to the lengths
 * array, and checking that max slots of capacity bytes (at least min_capacity) fit in buf.
 * Returns 0 with a JavaScript exception pending when they do not.
 */
static int get_read_args(napi_env env, napi_callback_info info, const char *call, int32_t min_capacity, struct read_args *a) {
  size_t argc = 7;
  napi_value argv[7];
  uint8_t *lens_raw;
  size_t buflen, lenslen;
  char what[64];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7 ||
      !get_i32(env, argv[0], &a->fd) || !get_bytes(env, argv[1], &a->buf, &buflen) ||
      !get_i32(env, argv[2], &a->base) || !get_i32(env, argv[3], &a->stride) ||
      !get_i32(env, argv[4], &a->capacity) || !get_i32(env, argv[5], &a->max) ||
      !get_bytes(env, argv[6], &lens_raw, &lenslen)) {
    snprintf(what, sizeof what, "%s: bad arguments", call);
    napi_throw_type_error(env, "EINVAL", what);
    return 0;
  }
  a->lens = (int32_t *)lens_raw;
  if (a->max > MAX_BATCH) a->max = MAX_BATCH;
  if ((size_t)a->max > lenslen / 4) a->max = (int32_t)(lenslen / 4);
  if (a->base < 0 || a->capacity < min_capacity || a->stride < a->capacity ||
      (size_t)a->base + (size_t)(a->max > 0 ? a->max - 1 : 0) * a->stride + a->capacity > buflen) {
    snprintf(what, sizeof what, "%s: buffer too small", call);
    napi_throw_range_error(env, "ERANGE", what);
    return 0;
  }
  return 1;
}

/* A batch write's arguments: (fd, buf, offsets: Int32Array, lengths: Int32Array, count),
 * and for the calls that join segments, a buffer to join them in (join, joinlen). */
struct write_args {
  int32_t fd, count;
  uint8_t *buf, *join;
  size_t buflen, joinlen;
  int32_t *offs, *lens;
};

/* Reads a batch write's arguments for `call` (with `join` as a sixth when join_min > 0, at
 * least that long); count must fit both arrays. Returns 0 with a JavaScript exception
 * pending when they are wrong. */
static int get_write_args(napi_env env, napi_callback_info info, const char *call, size_t join_min, struct write_args *a) {
  size_t argc = 6;
  napi_value argv[6];
  uint8_t *offs_raw, *lens_raw;
  size_t offslen, lenslen;
  char what[64];
  a->join = NULL;
  a->joinlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (join_min ? 6 : 5) ||
      !get_i32(env, argv[0], &a->fd) || !get_bytes(env, argv[1], &a->buf, &a->buflen) ||
      !get_bytes(env, argv[2], &offs_raw, &offslen) || !get_bytes(env, argv[3], &lens_raw, &lenslen) ||
      !get_i32(env, argv[4], &a->count) || (join_min && (!get_bytes(env, argv[5], &a->join, &a->joinlen) || a->joinlen < join_min))) {
    snprintf(what, sizeof what, "%s: bad arguments", call);
    napi_throw_type_error(env, "EINVAL", what);
    return 0;
  }
  a->offs = (int32_t *)offs_raw;
  a->lens = (int32_t *)lens_raw;
  if (a->count < 0 || (size_t)a->count > offslen / 4 || (size_t)a->count > lenslen / 4) {
    snprintf(what, sizeof what, "%s: count exceeds arrays", call);
    napi_throw_range_error(env, "ERANGE", what);
    return 0;
  }
  return 1;
}

/* The virtio-net header of a frame that asks nothing of the offloads (it is complete). */
static const struct virtio_net_hdr NO_OFFLOAD;

/* Whether frame i of a batch (offs[i], lens[i]) lies within the caller's buflen bytes. */
static int frame_within(const int32_t *offs, const int32_t *lens, int32_t i, size_t buflen) {
  return offs[i] >= 0 && lens[i] >= 0 && (size_t)offs[i] + (size_t)lens[i] <= buflen;
}

/* ---- TAP ------------------------------------------------------------------------------- */

/*
 * tapOpen(name: string, netnsPath: string | null, offload: boolean) -> { fd, name, offload, mac }
 * Attaches to the TAP device `name` (creating it if it does not exist; a persistent device
 * made by `ip tuntap add` is reused) in the namespace at netnsPath, or in ours when null.
 * The fd is non-blocking and close-on-exec. No packet information header (IFF_NO_PI).
 * With offload, frames carry a virtio-net header (IFF_VNET_HDR; read them with tapRead,
 * write with tapWrite) and the device is told Weft takes TCP super-frames and unfinished
 * checksums (TUNSETOFFLOAD: TSO4, TSO6, CSUM); offload in the result says whether the
 * kernel agreed (when not, the header is still there, always empty). mac is the device's MAC
 * ("" when the kernel would not say).
 */
static napi_value tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  bool offload = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &offload);
  int saved = -1;
  if (!name_in_netns(env, argv, name, &saved)) return NULL;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  int err = errno;
  bool offloaded = false;
  struct ifreq ifr;
  char mac[18] = "";
  if (fd >= 0) {
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
    int hdr = sizeof(struct virtio_net_hdr);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (offload && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)) {
      err = errno;
      close(fd);
      fd = -1;
    } else if (offload) {
      offloaded = ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) == 0;
    } else {
      /* A persistent device keeps what the last fd asked for: without the header, a
       * super-frame could not be told from a frame. */
      ioctl(fd, TUNSETOFFLOAD, 0UL);
    }
    /* Its MAC now, read while still in its namespace (where the kernel looks it up). */
    struct ifreq hw;
    memset(&hw, 0, sizeof hw);
    if (fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &hw) == 0) {
      const uint8_t *a = (const uint8_t *)hw.ifr_hwaddr.sa_data;
      snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
    }
  }
  if (saved >= 0) leave_netns(saved);
  if (fd < 0) return throw_errno(env, "attaching TAP device", err);
  napi_value out, vfd, vname, voff;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname));
  CHECK(napi_get_boolean(env, offloaded, &voff));
  CHECK(napi_set_named_property(env, out, "fd", vfd));
  CHECK(napi_set_named_property(env, out, "name", vname));
  CHECK(napi_set_named_property(env, out, "offload", voff));
  napi_value vmac;
  CHECK(napi_create_string_utf8(env, mac, NAPI_AUTO_LENGTH, &vmac));
  CHECK(napi_set_named_property(env, out, "mac", vmac));
  return out;
}

/*
 * tapSetMac(fd, mac: Uint8Array of 6) -> undefined
 * Gives the TAP device attached to fd this MAC: SIOCSIFHWADDR on the TAP's own fd, which
 * reaches the device in whatever namespace it has been moved to since it was opened (the
 * VM's namespace, a container's). Throws with the errno when the kernel refuses.
 */
static napi_value tap_set_mac(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  uint8_t *mac;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      !get_i32(env, argv[0], &fd) || !get_bytes(env, argv[1], &mac, &len) || len != ETH_ALEN) {
    napi_throw_type_error(env, "EINVAL", "tapSetMac: expected (fd, mac: 6 bytes)");
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
  memcpy(ifr.ifr_hwaddr.sa_data, mac, ETH_ALEN);
  if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0) return throw_errno(env, "setting the TAP device's MAC", errno);
  return NULL;
}

/*
 * readFrames(fd, buf, base, stride, capacity, max, lengths: Int32Array) -> count | -errno
 * Reads up to `max` frames, frame i into buf[base + i*stride, +capacity). Stops at EAGAIN.
 * Returns the number read (0 when none were waiting), or -errno when the first read fails
 * for another reason (the device is gone, say).
 */
static napi_value read_frames(napi_env env, napi_callback_info info) {
  struct read_args a;
  if (!get_read_args(env, info, "readFrames", 1, &a)) return NULL;
  int32_t fd = a.fd, base = a.base, stride = a.stride, capacity = a.capacity, max = a.max;
  uint8_t *buf = a.buf;
  int32_t *lens = a.lens;
  int32_t count = 0;
  while (count < max) {
    ssize_t r = read(fd, buf + base + (size_t)count * stride, capacity);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || count > 0) break;
      count = -errno;
      break;
    }
    lens[count++] = (int32_t)r;
  }
  return int32_result(env, count);
}

/*
 * writeFrames(fd, buf, offsets: Int32Array, lengths: Int32Array, count) -> attempted
 * Writes frames in order until one would block; returns how many were attempted. A frame
 * the device refuses for another reason is skipped and its lengths[i] set to -errno, so the
 * caller knows exactly which of the attempted frames went out.
 */
static napi_value write_frames(napi_env env, napi_callback_info info) {
  struct write_args a;
  if (!get_write_args(env, info, "writeFrames", 0, &a)) return NULL;
  int32_t fd = a.fd, count = a.count;
  uint8_t *buf = a.buf;
  size_t buflen = a.buflen;
  int32_t *offs = a.offs, *lens = a.lens;
  int32_t i = 0;
  for (; i < count; i++) {
    if (!frame_within(offs, lens, i, buflen)) {
      lens[i] = -EFAULT;
      continue;
    }
    ssize_t r;
    do r = write(fd, buf + offs[i], lens[i]); while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN) break;
      lens[i] = -errno;
    }
  }
  return int32_result(env, i);
}

/* ---- TAP with the virtio-net header: segmentation and receive offloads ---------------- */

/*
 * A TAP opened with IFF_VNET_HDR and offloads (TUNSETOFFLOAD) hands over TCP super-frames of
 * up to 64 KiB with a virtio-net header saying how to cut them (gso_size) and, for any
 * frame, a checksum the VM left for its NIC to finish. tapRead cuts them here into frames
 * the overlay can carry, each with its IP and TCP headers and checksums finished, copying
 * the payload and summing it in one pass; tapWrite does the reverse towards the VM: runs of
 * TCP segments of one flow, in order, are joined into one super-frame (each segment's
 * checksum checked in the same pass), so the VM's stack takes 64 KiB at a time.
 */

/* Implementation limits: a super-frame (a TAP's frame is at most 64 KiB plus the Ethernet
 * header and a tag), and the smallest segment size cut to (Linux's TCP_MIN_MSS), which bounds
 * the frames one read can make. */
#define SUPER_MAX (65535 + 18)
#define RAW_CAPACITY (SUPER_MAX + 64)
#define MIN_MSS 88
/* A frame's length when its virtio-net header asks for something that cannot be done
 * (a segment size or offsets that do not fit the frame): the caller counts it. */
#define BAD_OFFLOAD (-2)

static uint64_t sum_bytes(uint64_t sum, const uint8_t *p, size_t n) {
  /* Ones'-complement sum (RFC 1071) in host byte order: stored back as is, it is right. */
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    sum += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    sum += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    sum += w;
    p += 2;
    n -= 2;
  }
  if (n) {
    uint8_t last[2] = {p[0], 0};
    uint16_t w;
    memcpy(&w, last, 2);
    sum += w;
  }
  return sum;
}

/* Copies n bytes and sums them in the same pass (the bytes are read once). n even except at
 * the end of what is summed. */
static uint64_t copy_sum(uint8_t *dst, const uint8_t *src, size_t n, uint64_t sum) {
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    uint64_t w;
    memcpy(&w, src + k, 8);
    memcpy(dst + k, &w, 8);
    sum += (w & 0xffffffffu) + (w >> 32);
  }
  memcpy(dst + k, src + k, n - k);
  return sum_bytes(sum, src + k, n - k);
}

static uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* The pseudo-header's sum (RFC 793, RFC 8200 §8.1) for a TCP segment of tcp_len bytes. */
static uint64_t pseudo_sum(const uint8_t *ip, int v6, uint32_t tcp_len) {
  uint64_t sum = v6 ? sum_bytes(0, ip + 8, 32) : sum_bytes(0, ip + 12, 8);
  sum += htons(IPPROTO_TCP);
  sum += htons((uint16_t)(tcp_len >> 16)) + htons((uint16_t)tcp_len);
  return sum;
}

static void ipv4_header_checksum(uint8_t *ip) {
  ip[10] = ip[11] = 0;
  uint16_t c = (uint16_t)~fold(sum_bytes(0, ip, 20));
  memcpy(ip + 10, &c, 2);
}

/* Where a TCP super-frame's parts are: the IP header at l3, TCP at l4, payload at hdr. */
struct tcp_frame {
  int32_t l3, l4, hdr, v6;
};

/* Finds the headers of a TCP frame of len bytes (one VLAN tag allowed). Returns 0 if it is
 * not IPv4 without fragments or IPv6 with TCP right after its header. */
static int parse_tcp(const uint8_t *f, int32_t len, struct tcp_frame *t) {
  if (len < 14) return 0;
  int32_t l3 = 14;
  uint16_t type = get16(f + 12);
  if (type == ETH_P_8021Q) {
    if (len < 18) return 0;
    type = get16(f + 16);
    l3 = 18;
  }
  if (type == ETH_P_IP) {
    if (len < l3 + 20 || f[l3] >> 4 != 4 || f[l3 + 9] != IPPROTO_TCP) return 0;
    if (get16(f + l3 + 6) & 0x3fff) return 0; /* a fragment: MF or an offset */
    t->v6 = 0;
    t->l4 = l3 + (f[l3] & 0x0f) * 4;
    if ((f[l3] & 0x0f) < 5) return 0;
  } else if (type == ETH_P_IPV6) {
    if (len < l3 + 40 || f[l3] >> 4 != 6 || f[l3 + 6] != IPPROTO_TCP) return 0;
    t->v6 = 1;
    t->l4 = l3 + 40;
  } else {
    return 0;
  }
  t->l3 = l3;
  if (len < t->l4 + 20) return 0;
  int32_t doff = (f[t->l4 + 12] >> 4) * 4;
  if (doff < 20 || len < t->l4 + doff) return 0;
  t->hdr = t->l4 + doff;
  return 1;
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_CWR 0x80

/*
 * Writes segment `i` (payload [i*mss, +n) of the super-frame f) at dst: the headers copied
 * and fixed (IPv4 length, ID and checksum; IPv6 payload length; sequence number; FIN and PSH
 * only on the last segment, CWR only on the first) and the TCP checksum computed while the
 * payload is copied. Returns the segment's length.
 */
static int32_t write_segment(uint8_t *dst, const uint8_t *f, int32_t len, const struct tcp_frame *t, int32_t mss, int32_t i) {
  int32_t from = t->hdr + i * mss;
  int32_t n = len - from < mss ? len - from : mss;
  int last = from + n == len;
  memcpy(dst, f, (size_t)t->hdr);
  uint8_t *ip = dst + t->l3, *tcp = dst + t->l4;
  uint32_t tcp_len = (uint32_t)(t->hdr - t->l4 + n);
  if (t->v6) {
    put16(ip + 4, (uint16_t)tcp_len);
  } else {
    put16(ip + 2, (uint16_t)(t->l4 - t->l3 + tcp_len));
    put16(ip + 4, (uint16_t)(get16(f + t->l3 + 4) + i));
    ipv4_header_checksum(ip);
  }
  put32(tcp + 4, get32(f + t->l4 + 4) + (uint32_t)i * (uint32_t)mss);
  if (!last) tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
  if (i > 0) tcp[13] &= (uint8_t)~TCP_CWR;
  tcp[16] = tcp[17] = 0;
  uint64_t sum = pseudo_sum(ip, t->v6, tcp_len);
  sum = sum_bytes(sum, tcp, (size_t)(t->hdr - t->l4));
  sum = copy_sum(dst + t->hdr, f + from, (size_t)n, sum);
  uint16_t c = (uint16_t)~fold(sum);
  memcpy(tcp + 16, &c, 2);
  return t->hdr + n;
}

/* Finishes a checksum a VM left for its NIC (the field holds the pseudo-header's sum). */
static int finish_checksum(uint8_t *f, int32_t len, uint32_t start, uint32_t offset) {
  if (start >= (uint32_t)len || start + offset + 2 > (uint32_t)len) return 0;
  uint16_t c = (uint16_t)~fold(sum_bytes(0, f + start, (size_t)len - start));
  if (c == 0) c = 0xffff; /* a UDP checksum of 0 would mean none; the same value to TCP */
  memcpy(f + start + offset, &c, 2);
  return 1;
}

/* What tapRead keeps between calls in the caller's state array: a super-frame in `raw`
 * that did not fit in the slots of the last call. */
enum { ST_LEN, ST_NEXT, ST_MSS, ST_L3, ST_L4, ST_HDR, ST_V6, ST_SIZE };

/*
 * tapRead(fd, buf, base, stride, capacity, max, lengths, raw: Uint8Array, state: Int32Array)
 *   -> count | -errno
 * Like readFrames, for a TAP with the virtio-net header. Every frame comes out finished:
 * a super-frame is cut into segments of its gso_size, one per slot (what does not fit waits
 * in raw, described by state, for the next call), and a checksum left to finish is
 * finished. A frame whose header cannot be honoured gets length -2; one that does not fit
 * a slot (and is no super-frame) -1.
 */
#define PENDING INT32_MIN

/* Takes one frame read into raw (len bytes, after its virtio-net header vh): a plain frame
 * is copied to slot, its checksum finished if asked, and its length (or -1, BAD_OFFLOAD)
 * returned; a super-frame is left in raw, described in st, for cut_next (PENDING). */
static int32_t take_frame(const struct virtio_net_hdr *vh, const uint8_t *raw, int32_t len, uint8_t *slot, int32_t capacity, int32_t *st) {
  if (len < 0 || len > SUPER_MAX) return -1;
  uint8_t gso = vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso == VIRTIO_NET_HDR_GSO_NONE) {
    if (len > capacity) return -1;
    memcpy(slot, raw, (size_t)len);
    if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !finish_checksum(slot, len, vh->csum_start, vh->csum_offset)) return BAD_OFFLOAD;
    return len;
  }
  struct tcp_frame t;
  int want_v6 = gso == VIRTIO_NET_HDR_GSO_TCPV6;
  if ((gso != VIRTIO_NET_HDR_GSO_TCPV4 && !want_v6) || !parse_tcp(raw, len, &t) || t.v6 != want_v6 ||
      vh->gso_size < MIN_MSS || t.hdr + vh->gso_size > capacity || t.hdr >= len) return BAD_OFFLOAD;
  st[ST_LEN] = len;
  st[ST_NEXT] = 0;
  st[ST_MSS] = vh->gso_size;
  st[ST_L3] = t.l3;
  st[ST_L4] = t.l4;
  st[ST_HDR] = t.hdr;
  st[ST_V6] = t.v6;
  return PENDING;
}

/* Writes the next segment of the super-frame waiting in raw to slot; returns its length. */
static int32_t cut_next(const uint8_t *raw, uint8_t *slot, int32_t *st) {
  struct tcp_frame t = {st[ST_L3], st[ST_L4], st[ST_HDR], st[ST_V6]};
  int32_t len = st[ST_LEN];
  int32_t n = write_segment(slot, raw, len, &t, st[ST_MSS], st[ST_NEXT]);
  st[ST_NEXT]++;
  if (t.hdr + st[ST_NEXT] * st[ST_MSS] >= len) st[ST_LEN] = 0;
  return n;
}

/* tapRead's arguments from argv[first]: (buf, base, stride, capacity, max, lengths, raw,
 * state). Returns 0 with a JavaScript exception pending when they are wrong. */
static int get_tap_read_args(napi_env env, napi_value *argv, const char *call, struct read_args *a, uint8_t **raw, int32_t **st) {
  uint8_t *state_raw, *lens_raw;
  size_t buflen, lenslen, rawlen, statelen;
  char what[64];
  if (!get_bytes(env, argv[0], &a->buf, &buflen) || !get_i32(env, argv[1], &a->base) || !get_i32(env, argv[2], &a->stride) ||
      !get_i32(env, argv[3], &a->capacity) || !get_i32(env, argv[4], &a->max) || !get_bytes(env, argv[5], &lens_raw, &lenslen) ||
      !get_bytes(env, argv[6], raw, &rawlen) || !get_bytes(env, argv[7], &state_raw, &statelen) || rawlen < RAW_CAPACITY || statelen < ST_SIZE * 4) {
    snprintf(what, sizeof what, "%s: bad arguments", call);
    napi_throw_type_error(env, "EINVAL", what);
    return 0;
  }
  a->lens = (int32_t *)lens_raw;
  *st = (int32_t *)state_raw;
  if ((size_t)a->max > lenslen / 4) a->max = (int32_t)(lenslen / 4);
  if (a->base < 0 || a->capacity < 64 || a->stride < a->capacity ||
      (size_t)a->base + (size_t)(a->max > 0 ? a->max - 1 : 0) * a->stride + a->capacity > buflen) {
    snprintf(what, sizeof what, "%s: buffer too small", call);
    napi_throw_range_error(env, "ERANGE", what);
    return 0;
  }
  return 1;
}

static napi_value tap_read(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct read_args a;
  uint8_t *raw;
  int32_t *st;
  if (argc < 9 || !get_i32(env, argv[0], &a.fd)) {
    napi_throw_type_error(env, "EINVAL", "tapRead: bad arguments");
    return NULL;
  }
  if (!get_tap_read_args(env, argv + 1, "tapRead", &a, &raw, &st)) return NULL;
  int32_t count = 0;
  while (count < a.max) {
    uint8_t *slot = a.buf + a.base + (size_t)count * a.stride;
    if (st[ST_LEN] > 0) {
      /* Cut the waiting super-frame into the slots left. */
      a.lens[count++] = cut_next(raw, slot, st);
      continue;
    }
    struct virtio_net_hdr vh;
    struct iovec iov[2] = {{&vh, sizeof vh}, {raw, RAW_CAPACITY}};
    ssize_t r = readv(a.fd, iov, 2);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || count > 0) break;
      count = -errno;
      break;
    }
    int32_t n = take_frame(&vh, raw, (int32_t)r - (int32_t)sizeof vh, slot, a.capacity, st);
    if (n != PENDING) a.lens[count++] = n;
  }
  return int32_result(env, count);
}

/*
 * offloadTake(input: Uint8Array | null, buf, base, stride, capacity, max, lengths, raw,
 *             state) -> count
 * What tapRead does with a frame it read, for a frame given instead (input: its 10-byte
 * virtio-net header, then the frame; null: only what waits in state), so that the cutting
 * can be fuzzed without a TAP: tests only.
 */
static napi_value offload_take(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct read_args a;
  uint8_t *raw, *input = NULL;
  int32_t *st;
  size_t inputlen = 0;
  napi_valuetype t = napi_null;
  if (argc < 9 || napi_typeof(env, argv[0], &t) != napi_ok || (t != napi_null && !get_bytes(env, argv[0], &input, &inputlen))) {
    napi_throw_type_error(env, "EINVAL", "offloadTake: bad arguments");
    return NULL;
  }
  if (!get_tap_read_args(env, argv + 1, "offloadTake", &a, &raw, &st)) return NULL;
  int32_t count = 0;
  if (input != NULL && st[ST_LEN] == 0 && a.max > 0 && inputlen >= sizeof(struct virtio_net_hdr)) {
    struct virtio_net_hdr vh;
    memcpy(&vh, input, sizeof vh);
    size_t len = inputlen - sizeof vh;
    if (len > RAW_CAPACITY) len = RAW_CAPACITY;
    memcpy(raw, input + sizeof vh, len);
    int32_t n = take_frame(&vh, raw, (int32_t)len, a.buf + a.base, a.capacity, st);
    if (n != PENDING) a.lens[count++] = n;
  }
  while (count < a.max && st[ST_LEN] > 0) {
    a.lens[count] = cut_next(raw, a.buf + a.base + (size_t)count * a.stride, st);
    count++;
  }
  return int32_result(env, count);
}

/* The flow, flags and size of a TCP segment that may join others. */
struct segment {
  struct tcp_frame t;
  const uint8_t *f;
  int32_t len, payload;
};

/* A segment that may be joined: IPv4 without options or IPv6 without extensions, untagged,
 * its length what its IP header says, carrying data, and with no flag but ACK and PSH. */
static int joinable(const uint8_t *f, int32_t len, struct segment *s) {
  if (len > SUPER_MAX || !parse_tcp(f, len, &s->t) || s->t.l3 != 14) return 0;
  const uint8_t *ip = f + 14;
  if (s->t.v6 ? get16(ip + 4) + 54 != len : (s->t.l4 != 34 || get16(ip + 2) + 14 != len)) return 0;
  uint8_t flags = f[s->t.l4 + 13];
  if ((flags & ~(TCP_ACK | TCP_PSH)) != 0 || !(flags & TCP_ACK)) return 0;
  s->f = f;
  s->len = len;
  s->payload = len - s->t.hdr;
  return s->payload > 0;
}

/* Whether b goes right after a in one flow: the same addresses, ports and IP fields, the
 * same TCP header but for the sequence number (and the checksum), which follows on. */
static int follows(const struct segment *a, const struct segment *b) {
  if (a->t.hdr != b->t.hdr || a->t.v6 != b->t.v6 || memcmp(a->f, b->f, 14) != 0) return 0;
  const uint8_t *ia = a->f + 14, *ib = b->f + 14;
  if (a->t.v6) {
    if (memcmp(ia, ib, 4) != 0 || ia[7] != ib[7] || memcmp(ia + 8, ib + 8, 32) != 0) return 0;
  } else {
    /* TOS, DF, TTL, protocol, addresses; not the ID, length or checksum. */
    if (ia[1] != ib[1] || get16(ia + 6) != get16(ib + 6) || ia[8] != ib[8] || memcmp(ia + 12, ib + 12, 8) != 0) return 0;
  }
  const uint8_t *ta = a->f + a->t.l4, *tb = b->f + b->t.l4;
  if (get32(ta) != get32(tb) || get32(tb + 4) != get32(ta + 4) + (uint32_t)a->payload) return 0;
  /* Acknowledgement, offset, window, urgent pointer and options alike; flags but PSH too. */
  if (memcmp(ta + 8, tb + 8, 5) != 0 || (ta[13] & ~TCP_PSH) != (tb[13] & ~TCP_PSH) ||
      memcmp(ta + 14, tb + 14, 2) != 0 || memcmp(ta + 18, tb + 18, (size_t)(a->t.hdr - a->t.l4 - 18)) != 0) return 0;
  return 1;
}

/* Whether a segment's TCP checksum is right (a frame from the underlay is not trusted). */
static uint64_t segment_sum(const struct segment *s) {
  uint64_t sum = pseudo_sum(s->f + s->t.l3, s->t.v6, (uint32_t)(s->len - s->t.l4));
  return sum_bytes(sum, s->f + s->t.l4, (size_t)(s->t.hdr - s->t.l4));
}

/*
 * Joins frames i.. of a batch into one super-frame in `join` when they are a run of one TCP
 * flow's segments in order (each of the first one's size, the last one at most that; PSH
 * only on the last; each checksum right): the virtio-net header (saying the segment size,
 * and that the checksum is to be trusted as checked, as a NIC hands it over) and then the
 * frame. Returns how many frames it took (at least 2; *len the bytes in join), or 1 when
 * frame i goes as it is. Frame i must be within buf.
 */
static int32_t join_run(const uint8_t *buf, size_t buflen, const int32_t *offs, const int32_t *lens, int32_t i, int32_t count,
                        uint8_t *join, size_t *len) {
  struct segment first, prev, next;
  if (i + 1 >= count || !joinable(buf + offs[i], lens[i], &first) ||
      fold(segment_sum(&first) + sum_bytes(0, first.f + first.t.hdr, (size_t)first.payload)) != 0xffff) return 1;
  /* The first segment's headers, then each payload, checksummed while it is copied. */
  uint8_t *out = join + sizeof(struct virtio_net_hdr);
  memcpy(out, first.f, (size_t)first.len);
  int32_t at = first.len, n = 1;
  prev = first;
  while (i + n < count && !(prev.f[prev.t.l4 + 13] & TCP_PSH) && prev.payload == first.payload) {
    int32_t k = i + n;
    if (!frame_within(offs, lens, k, buflen)) break;
    if (!joinable(buf + offs[k], lens[k], &next) || next.payload > first.payload || !follows(&prev, &next)) break;
    if (at + next.payload > SUPER_MAX - 4 || at - 14 + next.payload > 65535) break;
    uint64_t sum = copy_sum(out + at, next.f + next.t.hdr, (size_t)next.payload, segment_sum(&next));
    if (fold(sum) != 0xffff) break;
    at += next.payload;
    prev = next;
    n++;
  }
  if (n == 1) return 1;
  struct virtio_net_hdr vh;
  memset(&vh, 0, sizeof vh);
  vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh.gso_type = first.t.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  vh.hdr_len = (uint16_t)first.t.hdr;
  vh.gso_size = (uint16_t)first.payload;
  vh.csum_start = (uint16_t)first.t.l4;
  vh.csum_offset = 16;
  memcpy(join, &vh, sizeof vh);
  uint8_t *ip = out + 14, *tcp = out + first.t.l4;
  if (first.t.v6) {
    put16(ip + 4, (uint16_t)(at - 54));
  } else {
    put16(ip + 2, (uint16_t)(at - 14));
    ipv4_header_checksum(ip);
  }
  tcp[13] |= prev.f[prev.t.l4 + 13] & TCP_PSH;
  /* The field holds the pseudo-header's sum, as a NIC would be handed it. */
  uint16_t c = fold(pseudo_sum(ip, first.t.v6, (uint32_t)(at - first.t.l4)));
  memcpy(tcp + 16, &c, 2);
  *len = sizeof vh + (size_t)at;
  return n;
}

/*
 * tapWrite(fd, buf, offsets, lengths, count, join: Uint8Array) -> attempted
 * Like writeFrames, for a TAP with the virtio-net header: a run of one TCP flow's segments
 * is written as one super-frame (join_run, built in `join`: RAW_CAPACITY bytes) that the
 * VM's stack takes whole; any other frame goes as it is, with an empty header.
 */
static napi_value tap_write(napi_env env, napi_callback_info info) {
  struct write_args a;
  if (!get_write_args(env, info, "tapWrite", RAW_CAPACITY, &a)) return NULL;
  int32_t fd = a.fd, count = a.count;
  uint8_t *buf = a.buf, *join = a.join;
  size_t buflen = a.buflen;
  int32_t *offs = a.offs, *lens = a.lens;
  int32_t i = 0;
  while (i < count) {
    if (!frame_within(offs, lens, i, buflen)) {
      lens[i++] = -EFAULT;
      continue;
    }
    size_t joined;
    int32_t n = join_run(buf, buflen, offs, lens, i, count, join, &joined);
    struct iovec iov[2] = {{(void *)&NO_OFFLOAD, sizeof NO_OFFLOAD}, {buf + offs[i], (size_t)lens[i]}};
    if (n > 1) {
      iov[0].iov_base = join;
      iov[0].iov_len = joined;
    }
    ssize_t r;
    do r = writev(fd, iov, n > 1 ? 1 : 2); while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN) break;
      for (int32_t k = 0; k < n; k++) lens[i + k] = -errno;
    }
    i += n;
  }
  return int32_result(env, i);
}

/*
 * offloadJoin(buf, offsets, lengths, count, join: Uint8Array, out: Int32Array) -> taken
 * What tapWrite does with frames 0.. of a batch: how many it would join (1: frame 0 goes
 * alone), and in out[0] the bytes of the joined frame (virtio-net header first) in join:
 * tests only.
 */
static napi_value offload_join(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct write_args a;
  uint8_t *out_raw, *offs_raw, *lens_raw;
  size_t outlen, offslen, lenslen;
  if (argc < 6 || !get_bytes(env, argv[0], &a.buf, &a.buflen) || !get_bytes(env, argv[1], &offs_raw, &offslen) ||
      !get_bytes(env, argv[2], &lens_raw, &lenslen) || !get_i32(env, argv[3], &a.count) ||
      !get_bytes(env, argv[4], &a.join, &a.joinlen) || !get_bytes(env, argv[5], &out_raw, &outlen) ||
      outlen < 4 || a.joinlen < RAW_CAPACITY || a.count < 0 || (size_t)a.count > offslen / 4 || (size_t)a.count > lenslen / 4) {
    napi_throw_type_error(env, "EINVAL", "offloadJoin: bad arguments");
    return NULL;
  }
  a.offs = (int32_t *)offs_raw;
  a.lens = (int32_t *)lens_raw;
  int32_t n = 0;
  size_t joined = 0;
  if (a.count > 0 && frame_within(a.offs, a.lens, 0, a.buflen)) {
    n = join_run(a.buf, a.buflen, a.offs, a.lens, 0, a.count, a.join, &joined);
  }
  ((int32_t *)out_raw)[0] = (int32_t)joined;
  return int32_result(env, n);
}

/*
 * checksum(src, srcOff, len, dst: Uint8Array | null, dstOff) -> number
 * The Internet checksum (RFC 1071, complemented) of src[srcOff, +len), copying the bytes to
 * dst[dstOff] in the same pass when dst is given: the routine cutting and joining segments
 * use, exposed for `npm run bench:checksum` and tests.
 */
static napi_value checksum(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *src, *dst = NULL;
  size_t srclen, dstlen = 0;
  int32_t off, len, doff = 0;
  napi_valuetype t = napi_null;
  if (argc < 5 || !get_bytes(env, argv[0], &src, &srclen) || !get_i32(env, argv[1], &off) || !get_i32(env, argv[2], &len) ||
      napi_typeof(env, argv[3], &t) != napi_ok || (t != napi_null && !get_bytes(env, argv[3], &dst, &dstlen)) || !get_i32(env, argv[4], &doff) ||
      off < 0 || len < 0 || (size_t)off + (size_t)len > srclen || (dst && (doff < 0 || (size_t)doff + (size_t)len > dstlen))) {
    napi_throw_range_error(env, "ERANGE", "checksum: bad arguments");
    return NULL;
  }
  uint64_t sum = dst ? copy_sum(dst + doff, src + off, (size_t)len, 0) : sum_bytes(0, src + off, (size_t)len);
  uint16_t c = (uint16_t)~fold(sum);
  napi_value out;
  CHECK(napi_create_uint32(env, ntohs(c), &out));
  return out;
}

/* ---- UDP ------------------------------------------------------------------------------- */

/*
 * udpOpen(address: string, port: number, bufferBytes: number) -> fd
 * An IPv4 UDP socket bound to address:port, non-blocking, with Don't Fragment set on what it
 * sends (an overlay packet too big for the underlay is an error to count, not a fragment).
 */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char addr[64] = {0};
  size_t n;
  int32_t port, bufbytes;
  CHECK(napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &n));
  if (!get_i32(env, argv[1], &port) || !get_i32(env, argv[2], &bufbytes)) {
    napi_throw_type_error(env, "EINVAL", "udpOpen: bad arguments");
    return NULL;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
    napi_throw_type_error(env, "EINVAL", "udpOpen: not an IPv4 address");
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "creating UDP socket", errno);
  int one = 1, pmtu = IP_PMTUDISC_PROBE;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  if (bufbytes > 0) {
    /* SO_*BUFFORCE ignores rmem_max for a privileged process; fall back when not. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufbytes, sizeof bufbytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufbytes, sizeof bufbytes);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufbytes, sizeof bufbytes) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufbytes, sizeof bufbytes);
  }
  /* Datagrams of one sender may come joined (udpRecv cuts them apart); a kernel without
   * UDP GRO hands them over one by one, which udpRecv takes too. */
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "binding UDP socket", err);
  }
  return int32_result(env, fd);
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Implementation limits for UDP GRO: messages per recvmmsg, and bytes each may bring (a
 * message is up to 64 segments joined by the kernel, at most 64 KiB). */
#define GRO_MESSAGES 32
#define GRO_MESSAGE_BYTES 65536
/* What udpRecvGro keeps between calls in the caller's state array: the messages of the
 * last recvmmsg not yet handed out, each (length, segment size, address, port). */
enum { GS_COUNT, GS_MESSAGE, GS_NEXT, GS_TABLE, GS_SIZE = GS_TABLE + 4 * GRO_MESSAGES };

/*
 * udpRecv(fd, buf, base, stride, capacity, max, lengths: Int32Array, addrs: Uint32Array,
 *         ports: Uint16Array, staging: Uint8Array, state: Int32Array) -> count | -errno
 * Receives up to `max` datagrams, datagram i into buf[base + i*stride, +capacity). A
 * datagram longer than capacity gets length -1. addrs[i] is the sender's IPv4 address as a
 * host-order number, ports[i] its port.
 *
 * The socket has UDP GRO (udpOpen): the kernel hands over up to 64 datagrams of one sender
 * joined in one message (a peer's UDP GSO send arrives whole, never cut into datagrams on
 * the way), received with recvmmsg into `staging` (GRO_MESSAGES * 64 KiB) and cut apart
 * here, one per slot. What does not fit in this call's slots waits for the next, described
 * by `state` (GS_SIZE numbers).
 */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, base, stride, capacity, max;
  uint8_t *buf, *lens_raw, *addrs_raw, *ports_raw, *staging, *state_raw;
  size_t buflen, lenslen, addrslen, portslen, staginglen, statelen;
  if (argc < 11 || !get_i32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &buflen) ||
      !get_i32(env, argv[2], &base) || !get_i32(env, argv[3], &stride) ||
      !get_i32(env, argv[4], &capacity) || !get_i32(env, argv[5], &max) ||
      !get_bytes(env, argv[6], &lens_raw, &lenslen) || !get_bytes(env, argv[7], &addrs_raw, &addrslen) ||
      !get_bytes(env, argv[8], &ports_raw, &portslen) || !get_bytes(env, argv[9], &staging, &staginglen) ||
      !get_bytes(env, argv[10], &state_raw, &statelen) ||
      staginglen < (size_t)GRO_MESSAGES * GRO_MESSAGE_BYTES || statelen < GS_SIZE * 4) {
    napi_throw_type_error(env, "EINVAL", "udpRecv: bad arguments");
    return NULL;
  }
  if ((size_t)max > lenslen / 4) max = (int32_t)(lenslen / 4);
  if ((size_t)max > addrslen / 4) max = (int32_t)(addrslen / 4);
  if ((size_t)max > portslen / 2) max = (int32_t)(portslen / 2);
  if (base < 0 || capacity <= 0 || stride < capacity ||
      (size_t)base + (size_t)(max > 0 ? max - 1 : 0) * stride + capacity > buflen) {
    napi_throw_range_error(env, "ERANGE", "udpRecv: buffer too small");
    return NULL;
  }
  int32_t *lens = (int32_t *)lens_raw, *st = (int32_t *)state_raw;
  uint32_t *addrs = (uint32_t *)addrs_raw;
  uint16_t *ports = (uint16_t *)ports_raw;
  int32_t count = 0;
  while (count < max) {
    if (st[GS_MESSAGE] < st[GS_COUNT]) {
      /* Hand out the next datagram of the message being cut. */
      int32_t m = st[GS_MESSAGE], *e = st + GS_TABLE + 4 * m;
      int32_t total = e[0], size = e[1], from = st[GS_NEXT];
      int32_t len = total - from < size ? total - from : size;
      if (len > capacity) {
        lens[count] = -1;
      } else {
        memcpy(buf + base + (size_t)count * stride, staging + (size_t)m * GRO_MESSAGE_BYTES + from, (size_t)len);
        lens[count] = len;
      }
      addrs[count] = (uint32_t)e[2];
      ports[count] = (uint16_t)e[3];
      count++;
      st[GS_NEXT] = from + len;
      if (st[GS_NEXT] >= total) {
        st[GS_MESSAGE]++;
        st[GS_NEXT] = 0;
      }
      continue;
    }
    struct mmsghdr msgs[GRO_MESSAGES];
    struct iovec iovs[GRO_MESSAGES];
    struct sockaddr_in from[GRO_MESSAGES];
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl[GRO_MESSAGES];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < GRO_MESSAGES; i++) {
      iovs[i].iov_base = staging + (size_t)i * GRO_MESSAGE_BYTES;
      iovs[i].iov_len = GRO_MESSAGE_BYTES;
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_control = ctl[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
    }
    int r;
    do r = recvmmsg(fd, msgs, GRO_MESSAGES, MSG_DONTWAIT, NULL); while (r < 0 && errno == EINTR);
    if (r <= 0) {
      if (r < 0 && errno != EAGAIN && count == 0) count = -errno;
      break;
    }
    st[GS_COUNT] = r;
    st[GS_MESSAGE] = 0;
    st[GS_NEXT] = 0;
    for (int i = 0; i < r; i++) {
      int32_t *e = st + GS_TABLE + 4 * i;
      int32_t size = (int32_t)msgs[i].msg_len;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0) size = g;
        }
      }
      /* A message the buffer cut (no joined message is that long) is one datagram, too long
       * for any slot. An empty datagram still takes a slot (size 1 ends it at once). */
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) size = (int32_t)msgs[i].msg_len;
      e[0] = (int32_t)msgs[i].msg_len;
      e[1] = size > 0 ? size : 1;
      e[2] = (int32_t)ntohl(from[i].sin_addr.s_addr);
      e[3] = ntohs(from[i].sin_port);
    }
  }
  return int32_result(env, count);
}


/* Implementation limits for UDP GSO: segments per send, bytes per send. */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

/*
 * udpSend(fd, buf, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array,
 *         ports: Uint16Array, count, gso: Int32Array) -> attempted
 * Sends datagram i (buf[offsets[i], +lengths[i]) to addrs[i]:ports[i]) with sendmmsg, in
 * order, until the socket would block; returns how many were attempted. A datagram refused
 * for another reason (EMSGSIZE, say) is skipped and its lengths[i] set to -errno.
 *
 * With gso[0] = 1, a run of consecutive datagrams of equal length to the same destination
 * goes as one message with UDP_SEGMENT (the kernel cuts it into datagrams late, so the IP
 * stack is crossed once per run). If the kernel refuses that (no checksum offload on the
 * route: EIO, or no GSO: EINVAL/ENOPROTOOPT), gso[0] is set to 0 and the call goes on
 * without it; the caller keeps it off.
 */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, count;
  uint8_t *buf, *offs_raw, *lens_raw, *addrs_raw, *ports_raw, *gso_raw;
  size_t buflen, offslen, lenslen, addrslen, portslen, gsolen;
  if (!get_i32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &buflen) ||
      !get_bytes(env, argv[2], &offs_raw, &offslen) || !get_bytes(env, argv[3], &lens_raw, &lenslen) ||
      !get_bytes(env, argv[4], &addrs_raw, &addrslen) || !get_bytes(env, argv[5], &ports_raw, &portslen) ||
      !get_i32(env, argv[6], &count) || !get_bytes(env, argv[7], &gso_raw, &gsolen) || gsolen < 4) {
    napi_throw_type_error(env, "EINVAL", "udpSend: bad arguments");
    return NULL;
  }
  int32_t *offs = (int32_t *)offs_raw, *lens = (int32_t *)lens_raw, *gso = (int32_t *)gso_raw;
  uint32_t *addrs = (uint32_t *)addrs_raw;
  uint16_t *ports = (uint16_t *)ports_raw;
  if (count < 0 || (size_t)count > offslen / 4 || (size_t)count > lenslen / 4 ||
      (size_t)count > addrslen / 4 || (size_t)count > portslen / 2) {
    napi_throw_range_error(env, "ERANGE", "udpSend: count exceeds arrays");
    return NULL;
  }
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  struct sockaddr_in to[MAX_BATCH];
  int32_t first[MAX_BATCH], segs[MAX_BATCH];
  union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl[MAX_BATCH];
  int32_t i = 0;
  while (i < count) {
    if (!frame_within(offs, lens, i, buflen)) {
      lens[i++] = -EFAULT;
      continue;
    }
    /* Build up to MAX_BATCH messages, each one datagram or a GSO run of equal ones. */
    int32_t nmsg = 0, k = i, niov = 0;
    while (nmsg < MAX_BATCH && niov < MAX_BATCH && k < count) {
      if (!frame_within(offs, lens, k, buflen)) break;
      int32_t n = 1;
      size_t bytes = (size_t)lens[k];
      if (gso[0]) {
        /* Equal datagrams, and one shorter to end the run (the kernel allows the last
         * segment to be short: a TCP super-frame's last piece). */
        while (k + n < count && niov + n < MAX_BATCH && n < GSO_MAX_SEGMENTS &&
               lens[k + n] > 0 && lens[k + n] <= lens[k] && addrs[k + n] == addrs[k] && ports[k + n] == ports[k] &&
               frame_within(offs, lens, k + n, buflen) &&
               bytes + (size_t)lens[k] <= GSO_MAX_BYTES) {
          bytes += (size_t)lens[k + n];
          n++;
          if (lens[k + n - 1] < lens[k]) break;
        }
      }
      struct msghdr *h = &msgs[nmsg].msg_hdr;
      memset(&msgs[nmsg], 0, sizeof msgs[nmsg]);
      memset(&to[nmsg], 0, sizeof to[nmsg]);
      to[nmsg].sin_family = AF_INET;
      to[nmsg].sin_port = htons(ports[k]);
      to[nmsg].sin_addr.s_addr = htonl(addrs[k]);
      for (int32_t j = 0; j < n; j++) {
        iovs[niov + j].iov_base = buf + offs[k + j];
        iovs[niov + j].iov_len = lens[k + j];
      }
      h->msg_iov = &iovs[niov];
      h->msg_iovlen = n;
      h->msg_name = &to[nmsg];
      h->msg_namelen = sizeof to[nmsg];
      if (n > 1) {
        h->msg_control = ctl[nmsg].buf;
        h->msg_controllen = sizeof ctl[nmsg].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(h);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        *(uint16_t *)CMSG_DATA(cm) = (uint16_t)lens[k];
      }
      first[nmsg] = k;
      segs[nmsg] = n;
      niov += n;
      k += n;
      nmsg++;
    }
    if (nmsg == 0) {
      lens[i++] = -EFAULT;
      continue;
    }
    int r;
    do r = sendmmsg(fd, msgs, nmsg, MSG_DONTWAIT); while (r < 0 && errno == EINTR);
    if (r > 0) {
      i = first[r - 1] + segs[r - 1];
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) break;
    int err = r < 0 ? errno : EIO;
    if (segs[0] > 1 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
      gso[0] = 0; /* this route cannot segment: go on without it */
      continue;
    }
    for (int32_t j = 0; j < segs[0]; j++) lens[first[0] + j] = -err; /* refused: skip it */
    i = first[0] + segs[0];
  }
  return int32_result(env, i);
}

/* ---- close ----------------------------------------------------------------------------- */

static napi_value fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "close: bad fd");
    return NULL;
  }
  close(fd);
  return NULL;
}

/* ---- readiness on the event loop -------------------------------------------------------- */

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int closing;
} Watch;

static void watch_closed(uv_handle_t *h) {
  free(h->data);
}

static void watch_fired(uv_poll_t *h, int status, int events) {
  Watch *w = h->data;
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  napi_create_int32(env, status, &arg); /* 0, or a negative libuv error */
  napi_value result;
  napi_status s = napi_make_callback(env, w->context, recv, cb, 1, &arg, &result);
  if (s == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void watch_finalize(napi_env env, void *data, void *hint) {
  /* The JS handle was collected without stop(): nothing to do if stop() ran already. */
}

/*
 * watchReadable(fd, callback(status)) -> handle
 * Calls callback on the event loop whenever fd is readable (level-triggered: a callback
 * that leaves data unread is called again on the next loop turn). status is 0, or a
 * negative libuv error when the fd failed. Stop with unwatch(handle).
 */
static napi_value watch_readable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "watchReadable: bad fd");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Watch *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "watchReadable", ENOMEM);
  w->env = env;
  CHECK(napi_create_reference(env, argv[1], 1, &w->callback));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "weft.watch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &w->context));
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc == 0) {
    w->handle.data = w;
    rc = uv_poll_start(&w->handle, UV_READABLE, watch_fired);
  }
  if (rc != 0) {
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->context);
    free(w);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, w, watch_finalize, NULL, &ext));
  return ext;
}

static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Watch *w;
  CHECK(napi_get_value_external(env, argv[0], (void **)&w));
  if (w == NULL || w->closing) return NULL;
  w->closing = 1;
  uv_poll_stop(&w->handle);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->handle, watch_closed);
  return NULL;
}

/* ---- module ---------------------------------------------------------------------------- */

/* ---- what the kernel dropped ------------------------------------------------------------ */

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

/*
 * udpDrops(fd) -> number
 * Datagrams the kernel dropped on this socket (its receive buffer was full, or a checksum
 * was bad): SO_MEMINFO's SK_MEMINFO_DROPS. A negative errno when the kernel cannot say.
 */
static napi_value udp_drops(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!get_i32(env, argv[0], &fd)) return NULL;
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  double drops;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) drops = -errno;
  else if (len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) drops = -ENOTSUP;
  else drops = mem[SK_MEMINFO_DROPS];
  napi_value out;
  CHECK(napi_create_double(env, drops, &out));
  return out;
}

/*
 * linkStats(name: string, netnsPath: string | null) -> { rxPackets, txPackets, rxDropped,
 *   txDropped, rxErrors, txErrors }
 * The kernel's counters of a network interface (RTM_GETLINK, IFLA_STATS64), asked through
 * a netlink socket made in the interface's namespace. For a TAP device, "tx" is what the
 * kernel sent towards the fd's reader: txDropped counts frames lost before Weft read them.
 */
static napi_value link_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  int saved = -1;
  if (!name_in_netns(env, argv, name, &saved)) return NULL;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int err = errno;
  if (saved >= 0) leave_netns(saved);
  if (s < 0) return throw_errno(env, "opening a netlink socket", err);

  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[RTA_SPACE(IFNAMSIZ)];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifi);
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
  rta->rta_type = IFLA_IFNAME;
  rta->rta_len = RTA_LENGTH(strlen(name) + 1);
  memcpy(RTA_DATA(rta), name, strlen(name) + 1);
  req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);

  static char buf[32768];
  struct rtnl_link_stats64 st;
  int found = 0;
  err = 0;
  if (send(s, &req, req.nh.nlmsg_len, 0) < 0) err = errno;
  ssize_t got = err ? -1 : recv(s, buf, sizeof buf, 0);
  if (!err && got < 0) err = errno;
  close(s);
  if (!err) {
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)got); nh = NLMSG_NEXT(nh, got)) {
      if (nh->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(nh);
        err = -e->error;
        break;
      }
      if (nh->nlmsg_type != RTM_NEWLINK) continue;
      struct ifinfomsg *ifi = (struct ifinfomsg *)NLMSG_DATA(nh);
      int len = IFLA_PAYLOAD(nh);
      for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_STATS64 && RTA_PAYLOAD(a) >= sizeof st) {
          memcpy(&st, RTA_DATA(a), sizeof st);
          found = 1;
        }
      }
      break;
    }
    if (!err && !found) err = ENODATA;
  }
  if (err) return throw_errno(env, "reading interface statistics", err);
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
#define STAT(field, key) \
  CHECK(napi_create_double(env, (double)st.field, &v)); \
  CHECK(napi_set_named_property(env, out, key, v));
  STAT(rx_packets, "rxPackets")
  STAT(tx_packets, "txPackets")
  STAT(rx_dropped, "rxDropped")
  STAT(tx_dropped, "txDropped")
  STAT(rx_errors, "rxErrors")
  STAT(tx_errors, "txErrors")
#undef STAT
  return out;
}


/* ---- AF_PACKET (provider networks) ------------------------------------------------------ */

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
/* Receive buffer of a packet socket (the kernel doubles it). */
#define PACKET_RCVBUF (4 * 1024 * 1024)
/* From <net/if.h>, which cannot be included beside <linux/if.h>. */
extern unsigned int if_nametoindex(const char *ifname);

/*
 * packetOpen(name: string, netnsPath: string | null) -> fd
 * A raw packet socket bound to interface `name` (in the namespace at netnsPath, or ours),
 * receiving every frame on it (the interface is put in promiscuous mode while the socket is
 * open, since the frames are for the VMs' MACs) except those sent through the interface
 * itself, with each frame's VLAN tag reported (PACKET_AUXDATA) and its checksum state (a
 * virtio-net header, PACKET_VNET_HDR). Non-blocking, close-on-exec. Writes on the fd need
 * a virtio-net header in front (packetSend).
 */
static napi_value packet_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  int saved = -1;
  if (!name_in_netns(env, argv, name, &saved)) return NULL;
  const char *what = "looking up the interface";
  int err = 0, fd = -1;
  unsigned ifindex = if_nametoindex(name);
  if (ifindex == 0) {
    err = errno;
  } else {
    what = "opening a packet socket";
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) err = errno;
  }
  if (fd >= 0) {
    int one = 1, rcvbuf = PACKET_RCVBUF;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (int)ifindex;
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = (int)ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) what = "asking for VLAN tags (PACKET_AUXDATA)";
    else if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) what = "asking for checksum state (PACKET_VNET_HDR)";
    else if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) what = "ignoring our own frames (PACKET_IGNORE_OUTGOING)";
    else if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) what = "binding the packet socket to the interface";
    else if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) what = "setting the interface promiscuous";
    else what = NULL;
    if (what != NULL) {
      err = errno;
      close(fd);
      fd = -1;
    } else {
      /* A larger buffer is best effort: the default still works. */
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
  }
  if (saved >= 0) leave_netns(saved);
  if (fd < 0) return throw_errno(env, what, err);
  return int32_result(env, fd);
}

/*
 * packetSend(fd, buf, offsets: Int32Array, lengths: Int32Array, count, join: Uint8Array)
 *   -> attempted
 * Like writeFrames, for a packet socket, with sendmmsg (one system call per batch): each
 * frame goes with an empty virtio-net header (no offload: the frame is complete), which a
 * socket with PACKET_VNET_HDR expects in front, except that a run of one TCP flow's
 * segments goes as one super-frame (join_run, built in `join`: RAW_CAPACITY bytes), which
 * the interface's driver or the kernel cuts again as late as it can. A frame refused for
 * another reason than a full queue is skipped with lengths[i] = -errno.
 */
static napi_value packet_send(napi_env env, napi_callback_info info) {
  struct write_args a;
  if (!get_write_args(env, info, "packetSend", RAW_CAPACITY, &a)) return NULL;
  int32_t fd = a.fd, count = a.count;
  uint8_t *buf = a.buf, *join = a.join;
  size_t buflen = a.buflen;
  int32_t *offs = a.offs, *lens = a.lens;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH][2];
  /* Message k of a sendmmsg call is frame index[k]; frames out of bounds are skipped. A run
   * to join is sent on its own, after the messages before it. */
  int32_t index[MAX_BATCH];
  int32_t i = 0;
  while (i < count) {
    int n = 0;
    int32_t next = i, run = 1;
    size_t joined = 0;
    for (; next < count && n < MAX_BATCH; next++) {
      if (!frame_within(offs, lens, next, buflen)) {
        lens[next] = -EFAULT;
        continue;
      }
      run = join_run(buf, buflen, offs, lens, next, count, join, &joined);
      if (run > 1) break;
      iovs[n][0].iov_base = (void *)&NO_OFFLOAD;
      iovs[n][0].iov_len = sizeof NO_OFFLOAD;
      iovs[n][1].iov_base = buf + offs[next];
      iovs[n][1].iov_len = (size_t)lens[next];
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_iov = iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 2;
      index[n++] = next;
    }
    if (n > 0) {
      int r;
      do r = sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT); while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) {
          i = index[0];
          break;
        }
        lens[index[0]] = -errno; /* the first message failed: skip it, go on after it */
        i = index[0] + 1;
        continue;
      }
      /* Stopped short: the next call says why message r failed (a full queue ends the
       * batch, another error skips that frame). */
      if (r < n) {
        i = index[r];
        continue;
      }
    }
    i = next;
    if (run > 1) {
      /* The run was joined when it was met: send it now, then go on after it. */
      ssize_t r;
      do r = send(fd, join, joined, MSG_DONTWAIT); while (r < 0 && errno == EINTR);
      if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) break;
      if (r < 0) for (int32_t k = 0; k < run; k++) lens[i + k] = -errno;
      i += run;
    }
  }
  return int32_result(env, i);
}

/*
 * packetRecv(fd, buf, base, stride, capacity, max, lengths: Int32Array) -> count | -errno
 * Like readFrames, for a packet socket: frame i lands at buf[base + i*stride] as it was on
 * the wire. The kernel takes a VLAN tag off a frame before a packet socket sees it and
 * reports it beside; it is put back here (the frame's payload moved 4 bytes on), so a frame
 * is received in at most capacity bytes with its tag. A frame from this host's own stack (a
 * veth, a bridge) may come with its TCP/UDP checksum left for a NIC to finish; it is
 * finished here, as the NIC would have. A frame cut short by the buffer, or a segmentation
 * offload super-frame (which a physical network never carries), has lengths[i] = -1.
 */
static napi_value packet_recv(napi_env env, napi_callback_info info) {
  struct read_args a;
  /* Room for a tag put back, and an Ethernet header. */
  if (!get_read_args(env, info, "packetRecv", 19, &a)) return NULL;
  int32_t fd = a.fd, base = a.base, stride = a.stride, capacity = a.capacity, max = a.max;
  uint8_t *buf = a.buf;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH][2];
  struct virtio_net_hdr vnet[MAX_BATCH];
  /* One control buffer per message, aligned for cmsghdr. */
  union {
    char bytes[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    struct cmsghdr align;
  } control[MAX_BATCH];
  memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)max);
  for (int32_t i = 0; i < max; i++) {
    iovs[i][0].iov_base = &vnet[i];
    iovs[i][0].iov_len = sizeof vnet[i];
    iovs[i][1].iov_base = buf + base + (size_t)i * stride;
    iovs[i][1].iov_len = capacity - 4; /* room for the tag put back */
    msgs[i].msg_hdr.msg_iov = iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 2;
    msgs[i].msg_hdr.msg_control = control[i].bytes;
    msgs[i].msg_hdr.msg_controllen = sizeof control[i].bytes;
  }
  int r;
  do r = recvmmsg(fd, msgs, max, MSG_DONTWAIT | MSG_TRUNC, NULL); while (r < 0 && errno == EINTR);
  int32_t count;
  if (r < 0) {
    count = errno == EAGAIN ? 0 : -errno;
  } else {
    count = r;
    int32_t *lens = a.lens;
    for (int i = 0; i < r; i++) {
      int32_t len = (int32_t)msgs[i].msg_len - (int32_t)sizeof vnet[i];
      if (len < 0 || len > capacity - 4 || vnet[i].gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        lens[i] = -1;
        continue;
      }
      if ((vnet[i].flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
          !finish_checksum(buf + base + (size_t)i * stride, len, vnet[i].csum_start, vnet[i].csum_offset)) {
        lens[i] = -1;
        continue;
      }
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (!(aux.tp_status & TP_STATUS_VLAN_VALID) || len < 12) break;
        uint8_t *f = buf + base + (size_t)i * stride;
        uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
        memmove(f + 16, f + 12, (size_t)len - 12);
        f[12] = tpid >> 8;
        f[13] = tpid & 0xff;
        f[14] = aux.tp_vlan_tci >> 8;
        f[15] = aux.tp_vlan_tci & 0xff;
        len += 4;
        break;
      }
      lens[i] = len;
    }
  }
  return int32_result(env, count);
}

/* ---- AEAD: ChaCha20-Poly1305 (RFC 8439) for tunnel datagrams ------------------------- */

/*
 * One cipher context each way, reused, per instance of the addon: each JavaScript thread
 * that loads it (the main thread, a worker) gets its own pair as its napi instance data,
 * freed when that thread's environment goes, so two threads never share a context. Within
 * one thread calls never overlap, and every call sets its own key and nonce, so all the
 * tunnels and sessions of that thread share the pair without sharing any state. The nonce
 * is WireGuard's: four zero bytes, then the 64-bit message counter, little-endian. No
 * associated data: the header a datagram carries is bound by the receiver index choosing
 * the key and the counter being the nonce.
 */
#define AEAD_TAG 16
struct aead_contexts {
  EVP_CIPHER_CTX *seal, *open;
};

static void aead_contexts_free(napi_env env, void *data, void *hint) {
  struct aead_contexts *a = data;
  EVP_CIPHER_CTX_free(a->seal);
  EVP_CIPHER_CTX_free(a->open);
  free(a);
}

/* This instance's contexts (made in init); NULL only if init could not make them. */
static struct aead_contexts *aead_contexts(napi_env env) {
  void *data = NULL;
  return napi_get_instance_data(env, &data) == napi_ok ? data : NULL;
}

/* Sets `*ctx` up for (key, counter): the cipher is fetched once per context, as fetching it
 * per packet (OpenSSL 3's implicit fetch) costs more than the key setup itself. */
static int aead_init(EVP_CIPHER_CTX **ctx, int enc, const uint8_t *key, int64_t counter) {
  uint8_t nonce[12] = {0};
  uint64_t c = (uint64_t)counter;
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
  if (*ctx == NULL) {
    *ctx = EVP_CIPHER_CTX_new();
    if (*ctx == NULL || EVP_CipherInit_ex(*ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1) {
      EVP_CIPHER_CTX_free(*ctx);
      *ctx = NULL;
      return 0;
    }
  }
  return EVP_CipherInit_ex(*ctx, NULL, NULL, key, nonce, enc) == 1;
}

/* Checks (key, counter, src, srcOff, len, dst, dstOff) and returns the pointers. */
static int aead_args(napi_env env, napi_callback_info info, const char *name, uint8_t **key, int64_t *counter,
                     uint8_t **src, int32_t *len, uint8_t **dst, int32_t out_len_delta) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7) return 0;
  uint8_t *k, *s, *d;
  size_t klen, slen, dlen;
  int32_t soff, doff;
  if (!get_bytes(env, argv[0], &k, &klen) || klen != 32 || napi_get_value_int64(env, argv[1], counter) != napi_ok ||
      !get_bytes(env, argv[2], &s, &slen) || !get_i32(env, argv[3], &soff) || !get_i32(env, argv[4], len) ||
      !get_bytes(env, argv[5], &d, &dlen) || !get_i32(env, argv[6], &doff) || *counter < 0 || soff < 0 || *len < 0 ||
      doff < 0 || (size_t)soff + (size_t)*len > slen || (int64_t)*len + out_len_delta < 0 ||
      (size_t)doff + (size_t)(*len + out_len_delta) > dlen) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s: bad arguments", name);
    napi_throw_range_error(env, "ERANGE", msg);
    return 0;
  }
  *key = k;
  *src = s + soff;
  *dst = d + doff;
  return 1;
}

/* aeadSeal(key, counter, src, srcOff, len, dst, dstOff): the ciphertext and its tag
 * (len + 16 bytes) at dst[dstOff]; src and dst may be the same bytes. */
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  uint8_t *key, *src, *dst;
  int64_t counter;
  int32_t len;
  if (!aead_args(env, info, "aeadSeal", &key, &counter, &src, &len, &dst, AEAD_TAG)) return NULL;
  struct aead_contexts *a = aead_contexts(env);
  int n = 0, fin = 0;
  if (a == NULL || !aead_init(&a->seal, 1, key, counter) || EVP_CipherUpdate(a->seal, dst, &n, src, len) != 1 ||
      EVP_CipherFinal_ex(a->seal, dst + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->seal, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG, dst + len) != 1) {
    napi_throw_error(env, "EINTERNAL", "aeadSeal: the cipher failed");
    return NULL;
  }
  return int32_result(env, len + AEAD_TAG);
}

/* aeadOpen(key, counter, src, srcOff, len, dst, dstOff): the plaintext's length (len - 16)
 * at dst[dstOff], or -1 when the tag does not authenticate (dst then holds garbage). */
static napi_value aead_open(napi_env env, napi_callback_info info) {
  uint8_t *key, *src, *dst;
  int64_t counter;
  int32_t len;
  if (!aead_args(env, info, "aeadOpen", &key, &counter, &src, &len, &dst, -AEAD_TAG)) return NULL;
  int32_t plain = len - AEAD_TAG;
  struct aead_contexts *a = aead_contexts(env);
  if (a == NULL) {
    napi_throw_error(env, "EINTERNAL", "aeadOpen: the cipher failed");
    return NULL;
  }
  int n = 0, fin = 0, ok;
  ok = aead_init(&a->open, 0, key, counter) && EVP_CipherUpdate(a->open, dst, &n, src, plain) == 1 &&
       EVP_CIPHER_CTX_ctrl(a->open, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG, src + plain) == 1 &&
       EVP_CipherFinal_ex(a->open, dst + n, &fin) == 1;
  return int32_result(env, ok ? plain : -1);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"tapOpen", NULL, tap_open, NULL, NULL, NULL, napi_default, NULL},
    {"tapSetMac", NULL, tap_set_mac, NULL, NULL, NULL, napi_default, NULL},
    {"readFrames", NULL, read_frames, NULL, NULL, NULL, napi_default, NULL},
    {"writeFrames", NULL, write_frames, NULL, NULL, NULL, napi_default, NULL},
    {"tapRead", NULL, tap_read, NULL, NULL, NULL, napi_default, NULL},
    {"tapWrite", NULL, tap_write, NULL, NULL, NULL, napi_default, NULL},
    {"checksum", NULL, checksum, NULL, NULL, NULL, napi_default, NULL},
    {"offloadTake", NULL, offload_take, NULL, NULL, NULL, napi_default, NULL},
    {"offloadJoin", NULL, offload_join, NULL, NULL, NULL, napi_default, NULL},
    {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
    {"udpRecv", NULL, udp_recv, NULL, NULL, NULL, napi_default, NULL},
    {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
    {"watchReadable", NULL, watch_readable, NULL, NULL, NULL, napi_default, NULL},
    {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_default, NULL},
    {"udpDrops", NULL, udp_drops, NULL, NULL, NULL, napi_default, NULL},
    {"linkStats", NULL, link_stats, NULL, NULL, NULL, napi_default, NULL},
    {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_default, NULL},
    {"packetRecv", NULL, packet_recv, NULL, NULL, NULL, napi_default, NULL},
    {"packetSend", NULL, packet_send, NULL, NULL, NULL, napi_default, NULL},
    {"aeadSeal", NULL, aead_seal, NULL, NULL, NULL, napi_default, NULL},
    {"aeadOpen", NULL, aead_open, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  struct aead_contexts *a = calloc(1, sizeof *a);
  if (a == NULL || napi_set_instance_data(env, a, aead_contexts_free, NULL) != napi_ok) {
    free(a);
    napi_throw_error(env, "ENOMEM", "weft_native: no memory for the AEAD's contexts");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
