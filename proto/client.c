/* Client side of the NBD handshake: a feed/drain machine (see client.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <common/endian.h>
#include <nbdproto/client.h>

#include "internal.h"

/* Room for a message quoting an export name and a server's error text. */
#define ERR_MAX (2 * NBDP_NAME_MAX + 256)

/* Largest minimum block size the protocol allows (2^16). */
#define MIN_BLOCK_LIMIT 65536u

/* Information we ask for in INFO and GO: block sizes (we honour them), the
 * canonical name and the description (nbd-client -l style output). */
static const uint16_t info_requests[] = {
	NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
};

enum phase {
	CP_GREETING,
	CP_REPLY_HEADER,
	CP_REPLY_DATA,
	CP_EXPORT_NAME_REPLY,
	CP_ZEROES,
	CP_DONE,
};

struct nbdp_client {
	enum nbdp_client_goal goal;
	bool no_optgo;
	void (*on_list)(void *ctx, const char *name, const char *desc);
	void *list_ctx;
	char name[NBDP_NAME_MAX + 1];     /* requested export */

	enum nbdp_client_state state;
	enum phase phase;
	bool fixed;                       /* server is fixed newstyle */
	bool no_zeroes;                   /* we sent NBD_FLAG_C_NO_ZEROES */
	bool used_export_name;
	bool got_export;                  /* INFO_EXPORT seen for the current option */
	uint32_t sent_opt;                /* option whose replies we are reading */
	uint32_t rep_type, rep_len;
	uint32_t zeroes_left;
	struct nbdp_in in;
	uint8_t hdr[sizeof(struct nbd_wire_option_reply)];
	struct nbdp_outbuf out;
	struct nbdp_export exp;
	char desc[NBDP_NAME_MAX + 1];
	char err[ERR_MAX];
	int err_code;
	uint8_t data[NBDP_CLIENT_REPLY_MAX];
};

static void send_option(struct nbdp_client *c, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t *p = nbdp_outbuf_reserve(&c->out, sizeof(struct nbd_wire_option));
	struct nbd_wire_option *w = (struct nbd_wire_option *)p;

	if (p) {
		put_be64(w->magic, NBD_IHAVEOPT);
		put_be32(w->option, opt);
		put_be32(w->length, len);
	}
	nbdp_outbuf_put(&c->out, data, len);
	c->sent_opt = opt;
	c->phase = CP_REPLY_HEADER;
	nbdp_in_expect(&c->in, c->hdr, sizeof(c->hdr));
}

static void send_info_go(struct nbdp_client *c, uint32_t opt)
{
	size_t nl = strlen(c->name);
	size_t i;
	uint32_t len = (uint32_t)(4 + nl + 2 + 2 * ARRAY_SIZE(info_requests));
	uint8_t *p;

	p = nbdp_outbuf_reserve(&c->out, sizeof(struct nbd_wire_option));
	if (p) {
		struct nbd_wire_option *w = (struct nbd_wire_option *)p;

		put_be64(w->magic, NBD_IHAVEOPT);
		put_be32(w->option, opt);
		put_be32(w->length, len);
	}
	nbdp_outbuf_put_be32(&c->out, (uint32_t)nl);
	nbdp_outbuf_put(&c->out, c->name, nl);
	nbdp_outbuf_put_be16(&c->out, ARRAY_SIZE(info_requests));
	for (i = 0; i < ARRAY_SIZE(info_requests); i++)
		nbdp_outbuf_put_be16(&c->out, info_requests[i]);
	c->sent_opt = opt;
	c->got_export = false;
	c->phase = CP_REPLY_HEADER;
	nbdp_in_expect(&c->in, c->hdr, sizeof(c->hdr));
}

static void send_export_name(struct nbdp_client *c)
{
	send_option(c, NBD_OPT_EXPORT_NAME, c->name, (uint32_t)strlen(c->name));
	c->used_export_name = true;
	c->phase = CP_EXPORT_NAME_REPLY;
	nbdp_in_expect(&c->in, c->data, sizeof(struct nbd_wire_export_name_reply));
}

/* Soft disconnect: the protocol wants NBD_OPT_ABORT rather than a bare close. */
static void send_abort(struct nbdp_client *c)
{
	send_option(c, NBD_OPT_ABORT, NULL, 0);
	c->phase = CP_DONE;
}

static ssize_t fail(struct nbdp_client *c, int code, bool abort, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static ssize_t fail(struct nbdp_client *c, int code, bool abort, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->err_code = code;
	c->state = NBDP_C_FAILED;
	if (abort)
		send_abort(c);
	c->phase = CP_DONE;
	return code;
}

#define PROTO_FAIL(c, ...) fail(c, -EPROTO, false, __VA_ARGS__)

static const char *rep_err_text(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR_UNSUP:           return "option not supported";
	case NBD_REP_ERR_POLICY:          return "forbidden by server policy";
	case NBD_REP_ERR_INVALID:         return "invalid request";
	case NBD_REP_ERR_PLATFORM:        return "not supported on the server's platform";
	case NBD_REP_ERR_TLS_REQD:        return "TLS required";
	case NBD_REP_ERR_UNKNOWN:         return "unknown export";
	case NBD_REP_ERR_SHUTDOWN:        return "server is shutting down";
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return "block size negotiation required";
	case NBD_REP_ERR_TOO_BIG:         return "request too big";
	case NBD_REP_ERR_EXT_HEADER_REQD: return "extended headers required";
	default:                          return "unknown error";
	}
}

static int rep_err_code(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR_UNSUP:           return -ENOTSUP;
	case NBD_REP_ERR_POLICY:
	case NBD_REP_ERR_TLS_REQD:        return -EACCES;
	case NBD_REP_ERR_INVALID:
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return -EINVAL;
	case NBD_REP_ERR_UNKNOWN:         return -ENOENT;
	case NBD_REP_ERR_SHUTDOWN:        return -ESHUTDOWN;
	case NBD_REP_ERR_TOO_BIG:         return -E2BIG;
	case NBD_REP_ERR_PLATFORM:
	case NBD_REP_ERR_EXT_HEADER_REQD: return -ENOTSUP;
	default:                          return -EIO;
	}
}

/* "... : unknown export (NBD_REP_ERR_UNKNOWN): <server text>" */
static ssize_t fail_rep(struct nbdp_client *c, const char *what)
{
	char text[NBDP_NAME_MAX + 1];

	nbdp_str_sanitize(text, sizeof(text), c->data, c->rep_len);
	fail(c, rep_err_code(c->rep_type), true, "%s: %s (%s)%s%s", what,
		    rep_err_text(c->rep_type), nbd_rep_name(c->rep_type), text[0] ? ": " : "", text);
	return 0;      /* a well-formed refusal: not a protocol error */
}

static ssize_t on_info(struct nbdp_client *c)
{
	const uint8_t *d = c->data;
	uint32_t len = c->rep_len;

	if (len < 2)
		return PROTO_FAIL(c, "%s: NBD_REP_INFO length %u below minimum 2",
				  nbd_opt_name(c->sent_opt), len);
	switch (get_be16(d)) {
	case NBD_INFO_EXPORT:
		if (len != sizeof(struct nbd_wire_info_export))
			return PROTO_FAIL(c, "NBD_INFO_EXPORT: length %u, must be %zu", len,
					  sizeof(struct nbd_wire_info_export));
		c->exp.size = get_be64(((const struct nbd_wire_info_export *)d)->size);
		c->exp.tflags = get_be16(((const struct nbd_wire_info_export *)d)->tflags);
		c->got_export = true;
		break;
	case NBD_INFO_NAME:
		if (len - 2 > NBDP_NAME_MAX)
			return PROTO_FAIL(c, "NBD_INFO_NAME: name length %u beyond limit %u",
					  len - 2, NBDP_NAME_MAX);
		if (!nbdp_str_ok(d + 2, len - 2))
			return PROTO_FAIL(c, "NBD_INFO_NAME: name contains a NUL byte");
		memcpy(c->exp.name, d + 2, len - 2);
		c->exp.name[len - 2] = '\0';
		break;
	case NBD_INFO_DESCRIPTION:
		nbdp_str_sanitize(c->desc, sizeof(c->desc), d + 2, len - 2);
		c->exp.description = c->desc;
		break;
	case NBD_INFO_BLOCK_SIZE: {
		const struct nbd_wire_info_block_size *w = (const void *)d;
		uint32_t min, pref, max;

		if (len != sizeof(*w))
			return PROTO_FAIL(c, "NBD_INFO_BLOCK_SIZE: length %u, must be %zu", len,
					  sizeof(*w));
		min = get_be32(w->min_block);
		pref = get_be32(w->pref_block);
		max = get_be32(w->max_block);
		if (!min || (min & (min - 1)) || min > MIN_BLOCK_LIMIT)
			return PROTO_FAIL(c, "NBD_INFO_BLOCK_SIZE: minimum block %u is not a power of two <= %u",
					  min, MIN_BLOCK_LIMIT);
		if (!pref || (pref & (pref - 1)) || pref < min)
			return PROTO_FAIL(c, "NBD_INFO_BLOCK_SIZE: preferred block %u is not a power of two >= minimum %u",
					  pref, min);
		if (max < min)
			return PROTO_FAIL(c, "NBD_INFO_BLOCK_SIZE: maximum block %u below minimum %u",
					  max, min);
		c->exp.min_block = min;
		c->exp.pref_block = pref;
		c->exp.max_block = max;
		break;
	}
	default:
		break;        /* the protocol says: ignore what we do not know */
	}
	return 0;
}

static void reset_export(struct nbdp_client *c)
{
	memset(&c->exp, 0, sizeof(c->exp));
	snprintf(c->exp.name, sizeof(c->exp.name), "%s", c->name);
	c->got_export = false;
}

static ssize_t on_info_go_reply(struct nbdp_client *c)
{
	char what[NBDP_NAME_MAX + 64];

	if (c->rep_type == NBD_REP_INFO)
		return on_info(c);
	if (c->rep_type == NBD_REP_ACK) {
		if (!c->got_export)
			return PROTO_FAIL(c, "%s: NBD_REP_ACK without NBD_INFO_EXPORT",
					  nbd_opt_name(c->sent_opt));
		if (c->sent_opt == NBD_OPT_GO) {
			c->state = NBDP_C_TRANSMISSION;
			c->phase = CP_DONE;
		} else {
			send_abort(c);
			c->state = NBDP_C_DONE;
		}
		return 0;
	}
	if (c->rep_type & NBD_REP_ERR_BIT) {
		if (c->rep_type == NBD_REP_ERR_UNSUP && c->sent_opt == NBD_OPT_GO) {
			reset_export(c);
			send_export_name(c);     /* an old server: fall back */
			return 0;
		}
		snprintf(what, sizeof(what), "server refused export '%s'", c->name);
		return fail_rep(c, what);
	}
	return PROTO_FAIL(c, "%s: unexpected reply type %s (%u)", nbd_opt_name(c->sent_opt),
			  nbd_rep_name(c->rep_type), c->rep_type);
}

static ssize_t on_list_reply(struct nbdp_client *c)
{
	char name[NBDP_NAME_MAX + 1], desc[NBDP_NAME_MAX + 1];
	uint32_t nl;

	if (c->rep_type == NBD_REP_SERVER) {
		if (c->rep_len < 4)
			return PROTO_FAIL(c, "NBD_REP_SERVER: length %u below minimum 4", c->rep_len);
		nl = get_be32(c->data);
		if (nl > c->rep_len - 4)
			return PROTO_FAIL(c, "NBD_REP_SERVER: name length %u beyond reply length %u - 4",
					  nl, c->rep_len);
		if (nl > NBDP_NAME_MAX)
			return PROTO_FAIL(c, "NBD_REP_SERVER: name length %u beyond limit %u",
					  nl, NBDP_NAME_MAX);
		if (!nbdp_str_ok(c->data + 4, nl))
			return PROTO_FAIL(c, "NBD_REP_SERVER: name contains a NUL byte");
		memcpy(name, c->data + 4, nl);
		name[nl] = '\0';
		nbdp_str_sanitize(desc, sizeof(desc), c->data + 4 + nl, c->rep_len - 4 - nl);
		if (c->on_list)
			c->on_list(c->list_ctx, name, desc);
		return 0;
	}
	if (c->rep_type == NBD_REP_ACK) {
		send_abort(c);
		c->state = NBDP_C_DONE;
		return 0;
	}
	if (c->rep_type & NBD_REP_ERR_BIT)
		return fail_rep(c, "server refused to list exports");
	return PROTO_FAIL(c, "NBD_OPT_LIST: unexpected reply type %s (%u)",
			  nbd_rep_name(c->rep_type), c->rep_type);
}

static ssize_t on_greeting(struct nbdp_client *c)
{
	const struct nbd_wire_greeting *g = (const struct nbd_wire_greeting *)c->data;
	uint64_t m1 = get_be64(g->nbdmagic), m2 = get_be64(g->ihaveopt);
	uint16_t hflags = get_be16(g->hflags);
	uint32_t cflags = 0;

	if (m1 != NBDMAGIC)
		return PROTO_FAIL(c, "greeting: magic 0x%016llx, expected NBDMAGIC 0x%016llx",
				  (unsigned long long)m1, (unsigned long long)NBDMAGIC);
	if (m2 == NBD_OLDSTYLE_MAGIC)
		return fail(c, -EPROTONOSUPPORT, false,
			    "greeting: server uses the oldstyle handshake, which is not supported");
	if (m2 != NBD_IHAVEOPT)
		return PROTO_FAIL(c, "greeting: magic 0x%016llx, expected IHAVEOPT 0x%016llx",
				  (unsigned long long)m2, (unsigned long long)NBD_IHAVEOPT);
	c->fixed = hflags & NBD_FLAG_FIXED_NEWSTYLE;
	if (c->fixed)
		cflags |= NBD_FLAG_C_FIXED_NEWSTYLE;
	if (hflags & NBD_FLAG_NO_ZEROES) {
		cflags |= NBD_FLAG_C_NO_ZEROES;
		c->no_zeroes = true;
	}
	nbdp_outbuf_put_be32(&c->out, cflags);

	switch (c->goal) {
	case NBDP_GOAL_GO:
		if (c->no_optgo || !c->fixed)
			send_export_name(c);
		else
			send_info_go(c, NBD_OPT_GO);
		return 0;
	case NBDP_GOAL_INFO:
		if (!c->fixed) {
			fail(c, -ENOTSUP, false,
			     "server does not speak fixed newstyle: cannot ask for export information");
			return 0;
		}
		send_info_go(c, NBD_OPT_INFO);
		return 0;
	case NBDP_GOAL_LIST:
		if (!c->fixed) {
			fail(c, -ENOTSUP, false,
			     "server does not speak fixed newstyle: cannot list exports");
			return 0;
		}
		send_option(c, NBD_OPT_LIST, NULL, 0);
		return 0;
	}
	return PROTO_FAIL(c, "internal: goal %d", (int)c->goal);
}

static ssize_t on_reply_data(struct nbdp_client *c)
{
	c->phase = CP_REPLY_HEADER;
	nbdp_in_expect(&c->in, c->hdr, sizeof(c->hdr));
	if (c->sent_opt == NBD_OPT_LIST)
		return on_list_reply(c);
	return on_info_go_reply(c);
}

static ssize_t on_reply_header(struct nbdp_client *c)
{
	const struct nbd_wire_option_reply *w = (const struct nbd_wire_option_reply *)c->hdr;
	uint64_t magic = get_be64(w->magic);
	uint32_t opt = get_be32(w->option);

	if (magic != NBD_REP_MAGIC)
		return PROTO_FAIL(c, "option reply: magic 0x%016llx, expected 0x%016llx",
				  (unsigned long long)magic, (unsigned long long)NBD_REP_MAGIC);
	if (opt != c->sent_opt)
		return PROTO_FAIL(c, "option reply: for option %u, expected %s (%u)", opt,
				  nbd_opt_name(c->sent_opt), c->sent_opt);
	c->rep_type = get_be32(w->type);
	c->rep_len = get_be32(w->length);
	if (c->rep_len > NBDP_CLIENT_REPLY_MAX)
		return PROTO_FAIL(c, "option reply to %s: length %u beyond limit %u",
				  nbd_opt_name(opt), c->rep_len, NBDP_CLIENT_REPLY_MAX);
	if (c->rep_len == 0)
		return on_reply_data(c);   /* no data: the stream may end here */
	c->phase = CP_REPLY_DATA;
	nbdp_in_expect(&c->in, c->data, c->rep_len);
	return 0;
}

static ssize_t on_export_name_reply(struct nbdp_client *c)
{
	const struct nbd_wire_export_name_reply *w = (const void *)c->data;

	c->exp.size = get_be64(w->size);
	c->exp.tflags = get_be16(w->tflags);
	if (c->no_zeroes) {
		c->state = NBDP_C_TRANSMISSION;
		c->phase = CP_DONE;
	} else {
		c->zeroes_left = NBD_EXPORT_NAME_ZEROES;
		c->phase = CP_ZEROES;
	}
	return 0;
}

ssize_t nbdp_client_feed(struct nbdp_client *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t left = len;
	ssize_t r = 0;

	if (c->out.failed)
		return -ENOMEM;
	while (left && c->state == NBDP_C_NEGOTIATING && r == 0) {
		switch (c->phase) {
		case CP_GREETING:
			if (nbdp_in_fill(&c->in, &p, &left))
				r = on_greeting(c);
			break;
		case CP_REPLY_HEADER:
			if (nbdp_in_fill(&c->in, &p, &left))
				r = on_reply_header(c);
			break;
		case CP_REPLY_DATA:
			if (nbdp_in_fill(&c->in, &p, &left))
				r = on_reply_data(c);
			break;
		case CP_EXPORT_NAME_REPLY:
			if (nbdp_in_fill(&c->in, &p, &left))
				r = on_export_name_reply(c);
			break;
		case CP_ZEROES: {
			size_t n = left < c->zeroes_left ? left : c->zeroes_left;

			/* Reserved bytes: skipped, not checked. */
			p += n;
			left -= n;
			c->zeroes_left -= (uint32_t)n;
			if (!c->zeroes_left) {
				c->state = NBDP_C_TRANSMISSION;
				c->phase = CP_DONE;
			}
			break;
		}
		case CP_DONE:
			left = 0;
			break;
		}
	}
	if (r < 0)
		return r;
	if (c->out.failed)
		return -ENOMEM;
	return p - (const uint8_t *)buf;
}

int nbdp_client_eof(struct nbdp_client *c)
{
	if (c->state != NBDP_C_NEGOTIATING)
		return c->err_code;
	if (c->phase == CP_EXPORT_NAME_REPLY || c->phase == CP_ZEROES)
		fail(c, -ECONNRESET, false,
		     "server closed the connection after NBD_OPT_EXPORT_NAME: export '%s' unknown or refused",
		     c->name);
	else if (c->phase == CP_GREETING)
		fail(c, -ECONNRESET, false, "server closed the connection before its greeting (%zu of %zu bytes)",
		     c->in.have, c->in.want);
	else
		fail(c, -ECONNRESET, false, "server closed the connection while answering %s",
		     nbd_opt_name(c->sent_opt));
	return c->err_code;
}

struct nbdp_client *nbdp_client_new(const struct nbdp_client_opts *o)
{
	struct nbdp_client *c;
	const char *name = o && o->export_name ? o->export_name : "";

	if (!o || (o->goal != NBDP_GOAL_GO && o->goal != NBDP_GOAL_INFO &&
		   o->goal != NBDP_GOAL_LIST)) {
		errno = EINVAL;
		return NULL;
	}
	if (strlen(name) > NBDP_NAME_MAX) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->goal = o->goal;
	c->no_optgo = o->no_optgo;
	c->on_list = o->on_list;
	c->list_ctx = o->list_ctx;
	snprintf(c->name, sizeof(c->name), "%s", name);
	reset_export(c);
	c->state = NBDP_C_NEGOTIATING;
	c->phase = CP_GREETING;
	nbdp_in_expect(&c->in, c->data, sizeof(struct nbd_wire_greeting));
	return c;
}

void nbdp_client_free(struct nbdp_client *c)
{
	if (!c)
		return;
	nbdp_outbuf_free(&c->out);
	free(c);
}

size_t nbdp_client_pending(struct nbdp_client *c, const void **data)
{
	return nbdp_outbuf_pending(&c->out, data);
}

void nbdp_client_consumed(struct nbdp_client *c, size_t n)
{
	nbdp_outbuf_consumed(&c->out, n);
}

enum nbdp_client_state nbdp_client_state(const struct nbdp_client *c)
{
	return c->state;
}

const struct nbdp_export *nbdp_client_export(const struct nbdp_client *c)
{
	if (c->state == NBDP_C_TRANSMISSION || (c->state == NBDP_C_DONE && c->goal == NBDP_GOAL_INFO))
		return &c->exp;
	return NULL;
}

const char *nbdp_client_error(const struct nbdp_client *c)
{
	return c->state == NBDP_C_FAILED ? c->err : "";
}

int nbdp_client_error_code(const struct nbdp_client *c)
{
	return c->state == NBDP_C_FAILED ? c->err_code : 0;
}

bool nbdp_client_used_export_name(const struct nbdp_client *c)
{
	return c->used_export_name;
}
