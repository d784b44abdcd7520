/*
 * netlink.c: the per-container network path over rtnetlink (raw NETLINK_ROUTE sockets).
 *
 * pmd_net_attach gives a held container its network: a veth pair whose host end is a port of
 * the bridge and whose peer is created directly inside the container's netns under its final
 * name (no rename, no move: nothing else can see a half-configured "eth0"), then, inside the
 * container, lo and eth0 up, the address and the default route. pmd_net_detach deletes the host
 * end. No `ip`, no libnl: each request is one message built here, sent with NLM_F_ACK, and its
 * ack (an NLMSG_ERROR with error 0, or -errno plus the kernel's extended-ack text) is checked
 * before the next one is sent. Requests are answered synchronously by the kernel in sendmsg's
 * context, so each round trip costs a few microseconds; the veth creation dominates.
 */
#include "pmd_sys.h"
#include "pmd.h"

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>

/* ---- a small message builder ----------------------------------------------------------- */

/* One request. 1 KiB is eight times what the largest one here (veth creation) needs; an
 * attribute that would not fit sets `overflow`, checked once by nl_request (EMSGSIZE). */
#define NL_BUF 1024

struct nl_msg {
    union {
        struct nlmsghdr hdr;
        char buf[NL_BUF];
    };
    int overflow;
};

static void *nl_init(struct nl_msg *m, int type, int flags, size_t body)
{
    memset(m, 0, sizeof *m);
    m->hdr.nlmsg_type = type;
    m->hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    m->hdr.nlmsg_len = NLMSG_LENGTH(body);
    return NLMSG_DATA(&m->hdr);
}

static struct rtattr *nl_put(struct nl_msg *m, int type, const void *data, size_t len)
{
    size_t at = NLMSG_ALIGN(m->hdr.nlmsg_len);
    struct rtattr *rta = (struct rtattr *)(m->buf + at);

    if (at + RTA_SPACE(len) > sizeof m->buf || RTA_LENGTH(len) > 0xffff) {
        m->overflow = 1;
        return NULL;
    }
    rta->rta_type = type;
    rta->rta_len = RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(rta), data, len);
    m->hdr.nlmsg_len = at + RTA_SPACE(len);
    return rta;
}

static void nl_put_str(struct nl_msg *m, int type, const char *s)
{
    nl_put(m, type, s, strlen(s) + 1);
}

static void nl_put_u32(struct nl_msg *m, int type, uint32_t v)
{
    nl_put(m, type, &v, sizeof v);
}

/* A nested attribute: open it, put its members, close it (its length then covers them). */
static struct rtattr *nl_nest(struct nl_msg *m, int type)
{
    return nl_put(m, type | NLA_F_NESTED, NULL, 0);
}

static void nl_nest_end(struct nl_msg *m, struct rtattr *nest)
{
    if (nest != NULL)
        nest->rta_len = m->buf + m->hdr.nlmsg_len - (char *)nest;
}

/* Room for a struct inside the message (the peer's ifinfomsg in VETH_INFO_PEER). */
static void *nl_reserve(struct nl_msg *m, size_t len)
{
    size_t at = NLMSG_ALIGN(m->hdr.nlmsg_len);

    if (at + NLMSG_ALIGN(len) > sizeof m->buf) {
        m->overflow = 1;
        return NULL;
    }
    m->hdr.nlmsg_len = at + NLMSG_ALIGN(len);
    return m->buf + at;
}

/* ---- a socket and its requests ---------------------------------------------------------- */

struct nl_sock {
    int fd;
    uint32_t seq;
};

static void nl_sock_close(struct nl_sock *s)
{
    pmd_closep(&s->fd);
}
#define nl_cleanup_sock __attribute__((cleanup(nl_sock_close)))

static int nl_open_fd(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int one = 1;

    if (fd < 0)
        return -1;
    /* Extended acks carry the kernel's reason ("Nexthop has invalid gateway") with the errno;
     * capped acks do not echo our request back. Both are best effort: old kernels lack them. */
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    return fd;
}

/* Append the kernel's extended-ack message, if the ack carries one, to err->path. */
static void nl_ext_ack(const struct nlmsghdr *h, struct pmd_error *err)
{
    const struct nlmsgerr *e = NLMSG_DATA(h);
    size_t off = sizeof *e;
    const struct rtattr *a;
    int left;

    if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
        return;
    if (!(h->nlmsg_flags & NLM_F_CAPPED))  /* the whole request precedes the TLVs */
        off += e->msg.nlmsg_len - sizeof e->msg;
    if (NLMSG_LENGTH(off) > h->nlmsg_len)
        return;
    left = h->nlmsg_len - NLMSG_LENGTH(off);
    for (a = (const void *)((const char *)e + NLMSG_ALIGN(off)); RTA_OK(a, left);
         a = RTA_NEXT(a, left)) {
        if (a->rta_type == NLMSGERR_ATTR_MSG && RTA_PAYLOAD(a) > 1) {
            size_t n = strlen(err->path);
            snprintf(err->path + n, sizeof err->path - n, " (kernel: %.*s)",
                     (int)strnlen(RTA_DATA(a), RTA_PAYLOAD(a)), (const char *)RTA_DATA(a));
            return;
        }
    }
}

/*
 * Send m and wait for its ack. With reply non-NULL, the request is a GET: the kernel answers
 * with one message of the same sequence number (copied into reply, at most reply_size bytes)
 * before the ack. On error, err gets op, what (the interface it was about) and the errno.
 */
static int nl_request(struct nl_sock *s, struct nl_msg *m, void *reply, size_t reply_size,
                      const char *op, const char *what, struct pmd_error *err)
{
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    /* A reply to RTM_GETLINK is ~1.5 KiB without stats; 16 KiB also holds a non-capped ack. */
    char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    int got_reply = 0;

    if (m->overflow)
        return pmd_fail(err, EMSGSIZE, op, "%s", what);
    m->hdr.nlmsg_seq = ++s->seq;
    if (sendto(s->fd, m->buf, m->hdr.nlmsg_len, 0, (struct sockaddr *)&kernel,
               sizeof kernel) < 0)
        return pmd_fail(err, errno, op, "%s (netlink send)", what);
    for (;;) {
        struct sockaddr_nl from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(s->fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from,
                             &fromlen);
        struct nlmsghdr *h;
        int left;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return pmd_fail(err, errno, op, "%s (netlink receive)", what);
        }
        if ((size_t)n > sizeof buf)
            return pmd_fail(err, EMSGSIZE, op, "%s (netlink reply truncated)", what);
        if (from.nl_pid != 0)  /* only the kernel speaks on this socket */
            continue;
        left = (int)n;
        for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != s->seq)  /* a late answer to an earlier request */
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e))
                    return pmd_fail(err, EBADMSG, op, "%s (short netlink ack)", what);
                if (e->error == 0) {
                    if (reply != NULL && !got_reply)
                        return pmd_fail(err, EBADMSG, op, "%s (no netlink reply)", what);
                    return 0;
                }
                pmd_fail(err, -e->error, op, "%s", what);
                nl_ext_ack(h, err);
                return -1;
            }
            if (reply != NULL && h->nlmsg_type != NLMSG_DONE && !got_reply) {
                if (h->nlmsg_len > reply_size)
                    return pmd_fail(err, EMSGSIZE, op, "%s (netlink reply too long)", what);
                memcpy(reply, h, h->nlmsg_len);
                got_reply = 1;
            }
        }
    }
}

/* ---- the container's netns -------------------------------------------------------------- */

/*
 * A NETLINK_ROUTE socket inside the container's network namespace.
 *
 * A socket belongs for its whole life to the netns its creator was in at socket() time, so
 * one socket created "inside" is enough for every request about the container's side. Our
 * caller is a multi-threaded CPython, and setns(CLONE_NEWNET) changes the netns of the calling
 * thread only (it is allowed in a multi-threaded process, unlike CLONE_NEWUSER, and unlike
 * CLONE_NEWNS it does not touch state shared between threads such as the fs struct). Doing it
 * on the caller's thread would then need a setns back, and a failure there would leave a
 * Python thread in the container's netns. So a short-lived thread of our own does it: setns,
 * socket, exit. The thread runs no Python and takes no lock (no malloc of ours; glibc's
 * pthread_create is fine to call from any thread); the namespace switch dies with it; the fd
 * table is shared by all threads, so the socket outlives it. All signals are blocked in it,
 * so that a process-directed signal (SIGINT for Python's handler, SIGCHLD) is delivered to a
 * thread that stays. A fork (even vfork) of a process with CPython's size would cost more,
 * and the child would need the same care about locks.
 */
struct ns_socket_job {
    int netns_fd;
    int fd;      /* out: the socket, or -1 */
    int err;     /* out: errno */
    const char *op;
};

static void *ns_socket_thread(void *arg)
{
    struct ns_socket_job *job = arg;

    if (setns(job->netns_fd, CLONE_NEWNET) < 0) {
        job->err = errno;
        job->op = "setns";
        return NULL;
    }
    job->fd = nl_open_fd();
    if (job->fd < 0) {
        job->err = errno;
        job->op = "netlink socket";
    }
    return NULL;
}

static int ns_socket(int netns_fd, const char *nspath, int *out, struct pmd_error *err)
{
    struct ns_socket_job job = { .netns_fd = netns_fd, .fd = -1 };
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t t;
    int e;

    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);  /* it only makes two syscalls */
    pthread_sigmask(SIG_BLOCK, &all, &old);       /* the new thread inherits this mask */
    e = pthread_create(&t, &attr, ns_socket_thread, &job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (e != 0)
        return pmd_fail(err, e, "pthread_create", "netns socket for %s", nspath);
    pthread_join(t, NULL);
    if (job.fd < 0)
        return pmd_fail(err, job.err, job.op, "%s", nspath);
    *out = job.fd;
    return 0;
}

/* ---- links ------------------------------------------------------------------------------ */

/* An interface name the kernel could accept (dev_valid_name: 1..15 bytes, no '/', ':' or
 * whitespace, not "." or ".."); checked here so that the error names the argument. */
static int valid_ifname(const char *name)
{
    size_t n;

    if (name == NULL)
        return 0;
    n = strlen(name);
    if (n == 0 || n >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    return strpbrk(name, "/: \t\n\r\v\f") == NULL;
}

struct link_info {
    int index;
    unsigned int mtu;
    char kind[32];  /* IFLA_INFO_KIND: "bridge", "veth", ... or "" */
};

/* RTM_GETLINK by name: ENODEV (from the kernel) if there is none. */
static int link_get(struct nl_sock *s, const char *name, struct link_info *li, const char *op,
                    struct pmd_error *err)
{
    struct nl_msg m;
    struct ifinfomsg *ifi = nl_init(&m, RTM_GETLINK, 0, sizeof *ifi);
    char reply[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    const struct nlmsghdr *h = (const void *)reply;
    const struct rtattr *a;
    int left;

    ifi->ifi_family = AF_UNSPEC;
    nl_put_str(&m, IFLA_IFNAME, name);
    nl_put_u32(&m, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);  /* keep the reply small */
    if (nl_request(s, &m, reply, sizeof reply, op, name, err) < 0)
        return -1;
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof *ifi))
        return pmd_fail(err, EBADMSG, op, "%s (unexpected netlink reply)", name);
    memset(li, 0, sizeof *li);
    li->index = ((const struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
    left = h->nlmsg_len - NLMSG_LENGTH(sizeof *ifi);
    for (a = IFLA_RTA(NLMSG_DATA(h)); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
        if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
            memcpy(&li->mtu, RTA_DATA(a), sizeof li->mtu);
        } else if ((a->rta_type & NLA_TYPE_MASK) == IFLA_LINKINFO) {
            const struct rtattr *b;
            int blen = RTA_PAYLOAD(a);

            for (b = RTA_DATA(a); RTA_OK(b, blen); b = RTA_NEXT(b, blen))
                if (b->rta_type == IFLA_INFO_KIND)
                    snprintf(li->kind, sizeof li->kind, "%.*s",
                             (int)strnlen(RTA_DATA(b), RTA_PAYLOAD(b)),
                             (const char *)RTA_DATA(b));
        }
    }
    return 0;
}

/* Set IFF_UP on the link `name` (ifi_change limits the change to that one flag). */
static int link_up(struct nl_sock *s, const char *name, struct pmd_error *err)
{
    struct nl_msg m;
    struct ifinfomsg *ifi = nl_init(&m, RTM_NEWLINK, 0, sizeof *ifi);

    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    nl_put_str(&m, IFLA_IFNAME, name);
    return nl_request(s, &m, NULL, 0, "set link up", name, err);
}

/*
 * Delete the veth `name` if there is one; 0 if there is none. Only a veth: a wrong name must
 * never take down the host's eth0 or the bridge (EINVAL). The deletion goes by ifindex, so
 * that it hits the link that was checked; ENODEV there means it went away meanwhile (its
 * netns died, or its peer was deleted), which is what we wanted.
 */
static int veth_delete(struct nl_sock *s, const char *name, struct pmd_error *err)
{
    struct link_info li;
    struct nl_msg m;
    struct ifinfomsg *ifi;

    if (link_get(s, name, &li, "find link", err) < 0)
        return err->err == ENODEV ? 0 : -1;
    if (strcmp(li.kind, "veth") != 0)
        return pmd_fail(err, EINVAL, "delete link", "%s (a %s, not a veth)", name,
                        li.kind[0] ? li.kind : "device");
    ifi = nl_init(&m, RTM_DELLINK, 0, sizeof *ifi);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = li.index;
    if (nl_request(s, &m, NULL, 0, "delete link", name, err) < 0)
        return err->err == ENODEV ? 0 : -1;
    return 0;
}

/*
 * Create the pair in one RTM_NEWLINK: the host end named host_ifname, enslaved to the bridge
 * (IFLA_MASTER) and up; the peer (VETH_INFO_PEER: an ifinfomsg and its own attributes) created
 * in the netns of netns_fd (IFLA_NET_NS_FD), named container_ifname, down. If any part fails
 * after the devices were registered (the bridge refuses the port, say), the kernel unregisters
 * them before answering, so a failed request leaves nothing; NLM_F_EXCL makes an existing
 * host_ifname EEXIST instead of a modification of that link.
 */
static int veth_create(struct nl_sock *s, const struct pmd_net_attach *a, int bridge_index,
                       unsigned int mtu, const unsigned char *mac, int netns_fd,
                       struct pmd_error *err)
{
    struct nl_msg m;
    struct ifinfomsg *ifi = nl_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
    struct ifinfomsg *peer;
    struct rtattr *linkinfo, *data, *peer_nest;
    char what[PMD_PATH_MAX];

    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    nl_put_str(&m, IFLA_IFNAME, a->host_ifname);
    nl_put_u32(&m, IFLA_MASTER, bridge_index);
    if (mtu)
        nl_put_u32(&m, IFLA_MTU, mtu);
    linkinfo = nl_nest(&m, IFLA_LINKINFO);
    nl_put_str(&m, IFLA_INFO_KIND, "veth");
    data = nl_nest(&m, IFLA_INFO_DATA);
    peer_nest = nl_nest(&m, VETH_INFO_PEER);
    peer = nl_reserve(&m, sizeof *peer);
    /* The peer cannot be set up here: the kernel registers and configures it before the two
     * ends are linked, and a veth without its peer refuses to open (ENOTCONN). */
    if (peer != NULL) {
        memset(peer, 0, sizeof *peer);
        peer->ifi_family = AF_UNSPEC;
    }
    nl_put_str(&m, IFLA_IFNAME, a->container_ifname);
    nl_put_u32(&m, IFLA_NET_NS_FD, netns_fd);
    if (mtu)
        nl_put_u32(&m, IFLA_MTU, mtu);
    if (mac != NULL)
        nl_put(&m, IFLA_ADDRESS, mac, 6);
    nl_nest_end(&m, peer_nest);
    nl_nest_end(&m, data);
    nl_nest_end(&m, linkinfo);
    snprintf(what, sizeof what, "%s (peer %s in the netns of pid %d, bridge %s)",
             a->host_ifname, a->container_ifname, a->netns_pid, a->bridge);
    return nl_request(s, &m, NULL, 0, "create veth", what, err);
}

/* ---- addresses and routes (inside the container) ---------------------------------------- */

static int addr_add(struct nl_sock *s, const char *ifname, int index, struct in_addr addr,
                    int prefix_len, const char *text, struct pmd_error *err)
{
    struct nl_msg m;
    struct ifaddrmsg *ifa = nl_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
    char what[PMD_PATH_MAX];

    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = prefix_len;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    /* On a broadcast link IFA_LOCAL is the address and IFA_ADDRESS the same one (a peer
     * address only on point-to-point links). */
    nl_put(&m, IFA_LOCAL, &addr, sizeof addr);
    nl_put(&m, IFA_ADDRESS, &addr, sizeof addr);
    if (prefix_len <= 30) {  /* /31 and /32 have no broadcast address (RFC 3021) */
        struct in_addr brd;
        uint32_t host_mask = prefix_len == 0 ? 0xffffffffu : (1u << (32 - prefix_len)) - 1;

        brd.s_addr = addr.s_addr | htonl(host_mask);
        nl_put(&m, IFA_BROADCAST, &brd, sizeof brd);
    }
    snprintf(what, sizeof what, "%s/%d on %s", text, prefix_len, ifname);
    return nl_request(s, &m, NULL, 0, "add address", what, err);
}

static int route_add_default(struct nl_sock *s, const char *ifname, int index, struct in_addr gw,
                             const char *text, struct pmd_error *err)
{
    struct nl_msg m;
    struct rtmsg *rtm = nl_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rtm);
    char what[PMD_PATH_MAX];

    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = 0;  /* default */
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    nl_put(&m, RTA_GATEWAY, &gw, sizeof gw);
    nl_put_u32(&m, RTA_OIF, index);
    snprintf(what, sizeof what, "default via %s dev %s", text, ifname);
    return nl_request(s, &m, NULL, 0, "add route", what, err);
}

/* ---- entry points ----------------------------------------------------------------------- */

/* "02:42:0a:4d:00:05" -> 6 bytes: exactly six pairs of hex digits (sscanf would also take
 * signs and spaces). A multicast (low bit of the first octet) or all-zero address cannot be
 * a station's: the kernel would refuse it with EADDRNOTAVAIL, after the argument checks. */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
    int any = 0;

    if (strlen(s) != 17)
        return -1;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        int hi = hex_digit(p[0]), lo = hex_digit(p[1]);

        if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
            return -1;
        mac[i] = hi << 4 | lo;
        any |= mac[i];
    }
    return (mac[0] & 1) || !any ? -1 : 0;
}

/* The work of pmd_net_attach: 0, or -1 with nothing created, or -2 once the pair exists (the
 * caller then deletes it, whatever step failed). */
static int attach_checked(const struct pmd_net_attach *a, struct pmd_error *err)
{
    struct in_addr addr, gw;
    unsigned char mac[6];
    char nspath[64];
    int netns_fd pmd_cleanup_fd = -1;
    struct nl_sock host nl_cleanup_sock = { .fd = -1 };
    struct nl_sock ctr nl_cleanup_sock = { .fd = -1 };
    struct link_info bridge, eth;
    struct stat ours, theirs;
    unsigned int mtu;

    /* Everything that can be refused is refused before anything is created. */
    if (a == NULL)
        return pmd_fail(err, EINVAL, "net attach", "no arguments");
    if (!valid_ifname(a->bridge))
        return pmd_fail(err, EINVAL, "bridge name", "%s", a->bridge ? a->bridge : "(null)");
    if (!valid_ifname(a->host_ifname))
        return pmd_fail(err, EINVAL, "interface name", "%s",
                        a->host_ifname ? a->host_ifname : "(null)");
    if (!valid_ifname(a->container_ifname))
        return pmd_fail(err, EINVAL, "interface name", "%s",
                        a->container_ifname ? a->container_ifname : "(null)");
    if (a->netns_pid <= 0)
        return pmd_fail(err, EINVAL, "netns pid", "%d", a->netns_pid);
    if (a->address == NULL || inet_pton(AF_INET, a->address, &addr) != 1)
        return pmd_fail(err, EINVAL, "address", "%s", a->address ? a->address : "(null)");
    if (a->prefix_len < 1 || a->prefix_len > 32)
        return pmd_fail(err, EINVAL, "prefix length", "%s/%d", a->address, a->prefix_len);
    if (a->gateway != NULL && inet_pton(AF_INET, a->gateway, &gw) != 1)
        return pmd_fail(err, EINVAL, "gateway", "%s", a->gateway);
    if (a->mtu < 0 || a->mtu > 65535)
        return pmd_fail(err, EINVAL, "mtu", "%d", a->mtu);
    if (a->mac != NULL && parse_mac(a->mac, mac) < 0)
        return pmd_fail(err, EINVAL, "mac address", "%s", a->mac);

    /* The same open netns is used for the peer's creation and for our socket inside it, so
     * both refer to one namespace even if the pid were reused meanwhile (the caller holds the
     * container, its own unreaped child, so it cannot be). */
    snprintf(nspath, sizeof nspath, "/proc/%d/ns/net", a->netns_pid);
    netns_fd = open(nspath, O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0)
        return pmd_fail(err, errno, "open netns", "%s", nspath);
    /* A pid that is not in a netns of its own (a wrong pid, or a container run with the
     * host's network) would have us give the host an eth0, an address and a default route. */
    if (fstat(netns_fd, &theirs) < 0)
        return pmd_fail(err, errno, "stat netns", "%s", nspath);
    if (stat("/proc/thread-self/ns/net", &ours) < 0)
        return pmd_fail(err, errno, "stat netns", "/proc/thread-self/ns/net");
    if (ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
        return pmd_fail(err, EINVAL, "netns pid", "%d shares our network namespace",
                        a->netns_pid);
    host.fd = nl_open_fd();
    if (host.fd < 0)
        return pmd_fail(err, errno, "netlink socket", "%s", a->host_ifname);
    if (link_get(&host, a->bridge, &bridge, "find bridge", err) < 0)
        return -1;
    mtu = a->mtu ? (unsigned int)a->mtu : bridge.mtu;
    if (ns_socket(netns_fd, nspath, &ctr.fd, err) < 0)
        return -1;

    if (veth_create(&host, a, bridge.index, mtu, a->mac ? mac : NULL, netns_fd, err) < 0)
        return -1;
    /* From here on the pair exists: any failure must delete it (the caller does). */
    if (link_get(&ctr, a->container_ifname, &eth, "find link", err) < 0)
        return -2;
    if (link_up(&ctr, "lo", err) < 0)
        return -2;
    /* Up before the address: IPv4 adds the prefix route of an address only on a link that
     * is up, and the default route needs that route to reach its gateway. */
    if (link_up(&ctr, a->container_ifname, err) < 0)
        return -2;
    if (addr_add(&ctr, a->container_ifname, eth.index, addr, a->prefix_len, a->address,
                 err) < 0)
        return -2;
    if (a->gateway != NULL &&
        route_add_default(&ctr, a->container_ifname, eth.index, gw, a->gateway, err) < 0)
        return -2;
    return 0;
}

int pmd_net_attach(const struct pmd_net_attach *a, struct pmd_error *err)
{
    struct nl_sock host nl_cleanup_sock = { .fd = -1 };
    struct pmd_error ignored;
    int ret = attach_checked(a, err);

    if (ret != -2)
        return ret;
    /* Undo: deleting the host end deletes its peer too. err keeps the first error; a
     * failure to clean up cannot be reported better than by that one. */
    host.fd = nl_open_fd();
    if (host.fd >= 0)
        veth_delete(&host, a->host_ifname, &ignored);
    return -1;
}

int pmd_net_detach(const char *host_ifname, struct pmd_error *err)
{
    struct nl_sock host nl_cleanup_sock = { .fd = -1 };

    if (!valid_ifname(host_ifname))
        return pmd_fail(err, EINVAL, "interface name", "%s",
                        host_ifname ? host_ifname : "(null)");
    host.fd = nl_open_fd();
    if (host.fd < 0)
        return pmd_fail(err, errno, "netlink socket", "%s", host_ifname);
    return veth_delete(&host, host_ifname, err);
}
