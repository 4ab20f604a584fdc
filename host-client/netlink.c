/* Kernel nbd configuration through generic netlink (libnl-genl): message
 * builders and reply parsers (pure, unit-tested by parsing them back with
 * libnl's own parser), and a small session that sends them.
 * Names come from the uapi <linux/nbd-netlink.h>; <linux/nbd.h> is not
 * included because its NBD_CMD_READ... clash with proto's names. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <linux/nbd-netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "internal.h"

/* ------------------------------------------------------------ builders */

static int put_header(struct nl_msg *m, int family, uint8_t cmd)
{
	/* Sequence and port are filled by nl_send_auto(). */
	return genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, cmd, NBD_GENL_VERSION)
		? 0 : -ENOMEM;
}

static int put_config(struct nl_msg *m, const struct npc_nl_config *c, bool reconfigure)
{
	struct nlattr *socks, *item;

	if (c->index >= 0 && nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)c->index))
		return -EMSGSIZE;
	if (!reconfigure) {
		if (nla_put_u64(m, NBD_ATTR_SIZE_BYTES, c->size) ||
		    nla_put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, c->block_size) ||
		    nla_put_u64(m, NBD_ATTR_SERVER_FLAGS, c->server_flags))
			return -EMSGSIZE;
	}
	if (c->timeout && nla_put_u64(m, NBD_ATTR_TIMEOUT, c->timeout))
		return -EMSGSIZE;
	if (c->dead_timeout && nla_put_u64(m, NBD_ATTR_DEAD_CONN_TIMEOUT, c->dead_timeout))
		return -EMSGSIZE;
	if (nla_put_u64(m, NBD_ATTR_CLIENT_FLAGS, c->client_flags))
		return -EMSGSIZE;
	if (c->identifier && nla_put_string(m, NBD_ATTR_BACKEND_IDENTIFIER, c->identifier))
		return -EMSGSIZE;
	if (c->nfds) {
		if (!(socks = nla_nest_start(m, NBD_ATTR_SOCKETS)))
			return -EMSGSIZE;
		for (unsigned i = 0; i < c->nfds; i++) {
			if (!(item = nla_nest_start(m, NBD_SOCK_ITEM)) ||
			    nla_put_u32(m, NBD_SOCK_FD, (uint32_t)c->fds[i]))
				return -EMSGSIZE;
			nla_nest_end(m, item);
		}
		nla_nest_end(m, socks);
	}
	return 0;
}

static int build(int family, uint8_t cmd, const struct npc_nl_config *c, bool reconf,
		 struct nl_msg **out)
{
	struct nl_msg *m = nlmsg_alloc();
	int r;

	if (!m)
		return -ENOMEM;
	if ((r = put_header(m, family, cmd)) || (c && (r = put_config(m, c, reconf)))) {
		nlmsg_free(m);
		return r;
	}
	*out = m;
	return 0;
}

int npc_nl_build_connect(int family, const struct npc_nl_config *c, struct nl_msg **out)
{
	if (!c->nfds || !c->size || !c->block_size)
		return -EINVAL; /* the kernel requires sockets and a size */
	return build(family, NBD_CMD_CONNECT, c, false, out);
}

int npc_nl_build_reconfigure(int family, const struct npc_nl_config *c, struct nl_msg **out)
{
	if (c->index < 0 || !c->nfds)
		return -EINVAL; /* RECONFIGURE names the device and brings sockets */
	return build(family, NBD_CMD_RECONFIGURE, c, true, out);
}

int npc_nl_build_disconnect(int family, int index, struct nl_msg **out)
{
	struct nl_msg *m;
	int r = build(family, NBD_CMD_DISCONNECT, NULL, false, &m);

	if (r)
		return r;
	if (nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index)) {
		nlmsg_free(m);
		return -EMSGSIZE;
	}
	*out = m;
	return 0;
}

int npc_nl_build_status(int family, int index, struct nl_msg **out)
{
	struct nl_msg *m;
	int r = build(family, NBD_CMD_STATUS, NULL, false, &m);

	if (r)
		return r;
	if (index >= 0 && nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index)) {
		nlmsg_free(m);
		return -EMSGSIZE;
	}
	*out = m;
	return 0;
}

/* ------------------------------------------------------------- parsers */

static struct nla_policy top_policy[NBD_ATTR_MAX + 1] = {
	[NBD_ATTR_INDEX] = { .type = NLA_U32 },
	[NBD_ATTR_SIZE_BYTES] = { .type = NLA_U64 },
	[NBD_ATTR_BLOCK_SIZE_BYTES] = { .type = NLA_U64 },
	[NBD_ATTR_TIMEOUT] = { .type = NLA_U64 },
	[NBD_ATTR_SERVER_FLAGS] = { .type = NLA_U64 },
	[NBD_ATTR_CLIENT_FLAGS] = { .type = NLA_U64 },
	[NBD_ATTR_SOCKETS] = { .type = NLA_NESTED },
	[NBD_ATTR_DEAD_CONN_TIMEOUT] = { .type = NLA_U64 },
	[NBD_ATTR_DEVICE_LIST] = { .type = NLA_NESTED },
	[NBD_ATTR_BACKEND_IDENTIFIER] = { .type = NLA_STRING },
};

static struct nla_policy device_policy[NBD_DEVICE_ATTR_MAX + 1] = {
	[NBD_DEVICE_INDEX] = { .type = NLA_U32 },
	[NBD_DEVICE_CONNECTED] = { .type = NLA_U8 },
};

int npc_nl_parse_index(struct nlmsghdr *h, uint32_t *index)
{
	struct nlattr *tb[NBD_ATTR_MAX + 1];

	if (genlmsg_parse(h, 0, tb, NBD_ATTR_MAX, top_policy) < 0)
		return -EPROTO;
	if (!tb[NBD_ATTR_INDEX])
		return -ENOENT;
	*index = nla_get_u32(tb[NBD_ATTR_INDEX]);
	return 0;
}

int npc_nl_parse_status(struct nlmsghdr *h, int index, bool *connected)
{
	struct nlattr *tb[NBD_ATTR_MAX + 1], *item, *dtb[NBD_DEVICE_ATTR_MAX + 1];
	int rem;

	if (genlmsg_parse(h, 0, tb, NBD_ATTR_MAX, top_policy) < 0)
		return -EPROTO;
	if (!tb[NBD_ATTR_DEVICE_LIST])
		return -ENOENT;
	nla_for_each_nested(item, tb[NBD_ATTR_DEVICE_LIST], rem) {
		if (nla_type(item) != NBD_DEVICE_ITEM)
			continue;
		if (nla_parse_nested(dtb, NBD_DEVICE_ATTR_MAX, item, device_policy) < 0)
			return -EPROTO;
		if (!dtb[NBD_DEVICE_INDEX] || !dtb[NBD_DEVICE_CONNECTED])
			return -EPROTO;
		if ((int)nla_get_u32(dtb[NBD_DEVICE_INDEX]) != index)
			continue;
		*connected = nla_get_u8(dtb[NBD_DEVICE_CONNECTED]) != 0;
		return 0;
	}
	return -ENOENT;
}

const char *npc_nl_strerror(int cmd, int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
		return "operation not permitted: configuring nbd devices needs CAP_SYS_ADMIN (run as root)";
	case -EBUSY:
		return cmd == NBD_CMD_CONNECT
			? "device busy: it is already connected or still in use (disconnect it first with -d)"
			: "device busy: it is in use";
	case -EINVAL:
		if (cmd == NBD_CMD_CONNECT)
			return "invalid argument: the kernel refused the size, block size or socket (see the values above)";
		if (cmd == NBD_CMD_RECONFIGURE)
			return "invalid argument: the device is not connected, has no dead connection to replace, or the identifier differs";
		return "invalid argument: no such nbd device (is the index beyond the nbds_max module parameter?)";
	case -ENOENT:
	case -ENODEV:
		return "no such nbd device";
	case -EOPNOTSUPP:
		return "not supported by this kernel's nbd driver (backend identifiers need Linux 5.14 or later)";
	case -ENOMEM:
		return "out of memory in the kernel";
	case -ENOSPC:
		return "no free nbd device";
	default:
		return strerror(-err);
	}
}

/* -------------------------------------------------------------- session */

struct npc_nl {
	struct nl_sock *sk;
	int family;
	int mcast_group;
	struct nl_sock *mc;     /* socket joined to the multicast group, or NULL */
};

struct reply_ctx {
	int cmd;
	int err;          /* negative errno from the kernel's error message */
	bool done;
	bool got;
	int index;        /* for status */
	uint32_t out_index;
	bool connected;
	int parse_err;
};

static int on_valid(struct nl_msg *m, void *arg)
{
	struct reply_ctx *c = arg;
	struct nlmsghdr *h = nlmsg_hdr(m);

	if (c->cmd == NBD_CMD_CONNECT) {
		c->parse_err = npc_nl_parse_index(h, &c->out_index);
		c->got = c->parse_err == 0;
	} else if (c->cmd == NBD_CMD_STATUS) {
		c->parse_err = npc_nl_parse_status(h, c->index, &c->connected);
		c->got = true;
	}
	return NL_OK;
}

static int on_ack(struct nl_msg *m, void *arg)
{
	struct reply_ctx *c = arg;

	c->done = true;
	return NL_STOP;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct reply_ctx *c = arg;

	c->err = e->error < 0 ? e->error : -e->error;
	c->done = true;
	return NL_STOP;
}

int npc_nl_open(struct npc_nl **out, char *err, size_t errlen)
{
	struct npc_nl *n = calloc(1, sizeof(*n));
	int r;

	if (!n)
		return -ENOMEM;
	if (!(n->sk = nl_socket_alloc())) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = genl_connect(n->sk)) < 0) {
		snprintf(err, errlen, "netlink: cannot open a generic netlink socket: %s",
			 nl_geterror(r));
		r = -EIO;
		goto fail;
	}
	n->family = genl_ctrl_resolve(n->sk, NBD_GENL_FAMILY_NAME);
	if (n->family < 0) {
		snprintf(err, errlen,
			 "kernel nbd module not loaded: genl family '%s' not found; run modprobe nbd",
			 NBD_GENL_FAMILY_NAME);
		r = -ENOENT;
		goto fail;
	}
	*out = n;
	return 0;
fail:
	npc_nl_close(n);
	return r;
}

void npc_nl_close(struct npc_nl *n)
{
	if (!n)
		return;
	nl_socket_free(n->sk);
	nl_socket_free(n->mc);
	free(n);
}

int npc_nl_family(const struct npc_nl *n)
{
	return n->family;
}

/* Sends m (consumed) and waits for the kernel's answer: the reply message
 * (CONNECT, STATUS) and the ACK or error. */
static int transact(struct npc_nl *n, int cmd, struct nl_msg *m, struct reply_ctx *c)
{
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int r;

	if (!cb) {
		nlmsg_free(m);
		return -ENOMEM;
	}
	c->cmd = cmd;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, c);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, c);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, c);
	r = nl_send_auto(n->sk, m);
	nlmsg_free(m);
	if (r < 0) {
		nl_cb_put(cb);
		return -EIO;
	}
	while (!c->done) {
		r = nl_recvmsgs(n->sk, cb);
		if (r < 0 && !c->done) {
			nl_cb_put(cb);
			return -EIO;
		}
	}
	nl_cb_put(cb);
	return c->err;
}

int npc_nl_connect(struct npc_nl *n, const struct npc_nl_config *cfg, uint32_t *index)
{
	struct reply_ctx c = { 0 };
	struct nl_msg *m;
	int r;

	if ((r = npc_nl_build_connect(n->family, cfg, &m)))
		return r;
	if ((r = transact(n, NBD_CMD_CONNECT, m, &c)))
		return r;
	if (!c.got)
		return cfg->index >= 0 ? (*index = (uint32_t)cfg->index, 0) : -EPROTO;
	*index = c.out_index;
	return 0;
}

int npc_nl_reconfigure(struct npc_nl *n, const struct npc_nl_config *cfg)
{
	struct reply_ctx c = { 0 };
	struct nl_msg *m;
	int r;

	if ((r = npc_nl_build_reconfigure(n->family, cfg, &m)))
		return r;
	return transact(n, NBD_CMD_RECONFIGURE, m, &c);
}

int npc_nl_disconnect(struct npc_nl *n, int index)
{
	struct reply_ctx c = { 0 };
	struct nl_msg *m;
	int r;

	if ((r = npc_nl_build_disconnect(n->family, index, &m)))
		return r;
	return transact(n, NBD_CMD_DISCONNECT, m, &c);
}

int npc_nl_status(struct npc_nl *n, int index, bool *connected)
{
	struct reply_ctx c = { .index = index };
	struct nl_msg *m;
	int r;

	if ((r = npc_nl_build_status(n->family, index, &m)))
		return r;
	if ((r = transact(n, NBD_CMD_STATUS, m, &c)))
		return r;
	if (!c.got || c.parse_err)
		return c.parse_err ? c.parse_err : -ENOENT;
	*connected = c.connected;
	return 0;
}

/* LINK_DEAD notifications come on the family's multicast group. */
int npc_nl_watch(struct npc_nl *n, char *err, size_t errlen)
{
	int grp, r;

	grp = genl_ctrl_resolve_grp(n->sk, NBD_GENL_FAMILY_NAME, NBD_GENL_MCAST_GROUP_NAME);
	if (grp < 0) {
		snprintf(err, errlen, "netlink: multicast group '%s' not found: %s",
			 NBD_GENL_MCAST_GROUP_NAME, nl_geterror(grp));
		return -ENOENT;
	}
	if (!(n->mc = nl_socket_alloc()))
		return -ENOMEM;
	nl_socket_disable_seq_check(n->mc);
	if ((r = genl_connect(n->mc)) < 0 || (r = nl_socket_add_membership(n->mc, grp)) < 0 ||
	    (r = nl_socket_set_nonblocking(n->mc)) < 0) {
		snprintf(err, errlen, "netlink: cannot join '%s': %s", NBD_GENL_MCAST_GROUP_NAME,
			 nl_geterror(r));
		return -EIO;
	}
	n->mcast_group = grp;
	return 0;
}

int npc_nl_watch_fd(const struct npc_nl *n)
{
	return n->mc ? nl_socket_get_fd(n->mc) : -1;
}

struct dead_ctx {
	int index;
	bool dead;
};

static int on_mcast(struct nl_msg *m, void *arg)
{
	struct dead_ctx *d = arg;
	struct nlmsghdr *h = nlmsg_hdr(m);
	struct genlmsghdr *g = nlmsg_data(h);
	uint32_t idx;

	if (g->cmd == NBD_CMD_LINK_DEAD && npc_nl_parse_index(h, &idx) == 0 &&
	    (int)idx == d->index)
		d->dead = true;
	return NL_OK;
}

int npc_nl_link_dead(struct npc_nl *n, int index)
{
	struct dead_ctx d = { .index = index };
	struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
	int r;

	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_mcast, &d);
	do
		r = nl_recvmsgs(n->mc, cb);
	while (r >= 0 && !d.dead);
	nl_cb_put(cb);
	return d.dead ? 1 : 0;
}

/* ---------------------------------------------------- kernel ops table */

static int k_open(void **ctx, char *err, size_t errlen)
{
	return npc_nl_open((struct npc_nl **)ctx, err, errlen);
}

static void k_close(void *ctx)
{
	npc_nl_close(ctx);
}

static int k_connect(void *ctx, const struct npc_nl_config *c, uint32_t *index)
{
	return npc_nl_connect(ctx, c, index);
}

static int k_reconfigure(void *ctx, const struct npc_nl_config *c)
{
	return npc_nl_reconfigure(ctx, c);
}

static int k_disconnect(void *ctx, int index)
{
	return npc_nl_disconnect(ctx, index);
}

static int k_watch(void *ctx, char *err, size_t errlen)
{
	return npc_nl_watch(ctx, err, errlen);
}

static int k_link_dead(void *ctx, int index)
{
	return npc_nl_watch_fd(ctx) >= 0 ? npc_nl_link_dead(ctx, index) : 0;
}

const struct npc_kernel_ops npc_kernel_netlink = {
	.open = k_open, .close = k_close, .connect = k_connect, .reconfigure = k_reconfigure,
	.disconnect = k_disconnect, .watch = k_watch, .link_dead = k_link_dead,
};

const struct npc_kernel_ops *npc_kernel = &npc_kernel_netlink;
