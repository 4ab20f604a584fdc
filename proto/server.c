/* Server side of the NBD handshake: a feed/drain machine (see server.h).
 *
 * Choices (docs/proto.md explains them):
 *  - fixed newstyle, NO_ZEROES offered; a client without C_FIXED_NEWSTYLE is
 *    still answered in fixed newstyle (the document allows honouring it);
 *  - simple replies only: STRUCTURED_REPLY, LIST/SET_META_CONTEXT and
 *    EXTENDED_HEADERS get NBD_REP_ERR_UNSUP, like any option we do not
 *    implement (STARTTLS too: NOTLS mode);
 *  - INFO/GO: INFO_EXPORT always, INFO_NAME / INFO_DESCRIPTION when asked,
 *    INFO_BLOCK_SIZE when asked or when the export needs a minimum block
 *    size > 1; GO for such an export without an INFO_BLOCK_SIZE request gets
 *    the block sizes then NBD_REP_ERR_BLOCK_SIZE_REQD;
 *  - option data longer than NBDP_SERVER_OPT_MAX is skipped as it arrives
 *    and answered with NBD_REP_ERR_TOO_BIG; EXPORT_NAME cannot be answered
 *    with an error, so an over-long or refused EXPORT_NAME closes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <common/endian.h>
#include <nbdproto/server.h>

#include "internal.h"

/* Room for a message naming an export of the longest legal name. */
#define REASON_MAX (NBDP_NAME_MAX + 256)

/* Largest block size constraint the protocol allows for a minimum (2^16). */
#define MIN_BLOCK_LIMIT 65536u

/* Preferred block size advertised when the export states none: the
 * protocol's default (2^12). */
#define DEFAULT_PREF_BLOCK 4096u

/* Client flags this server understands; any other bit closes the session. */
#define KNOWN_CLIENT_FLAGS (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

enum phase {
	PH_CLIENT_FLAGS,
	PH_OPT_HEADER,
	PH_OPT_DATA,
	PH_OPT_DISCARD,
	PH_DONE,
};

struct nbdp_server {
	const struct nbdp_server_ops *ops;
	void *opaque;
	enum nbdp_state state;
	enum phase phase;
	bool no_zeroes;
	bool block_size_agreed;
	uint32_t opt;                 /* option being received */
	uint32_t opt_len;             /* its data length */
	uint32_t discard_left;        /* PH_OPT_DISCARD: bytes still to skip */
	struct nbdp_in in;
	uint8_t hdr[sizeof(struct nbd_wire_option)];
	struct nbdp_outbuf out;
	struct nbdp_export exp;       /* the export chosen by GO / EXPORT_NAME */
	struct nbdp_export scratch;   /* lookup results for INFO, GO, EXPORT_NAME */
	char reason[REASON_MAX];
	uint8_t data[NBDP_SERVER_OPT_MAX];
};

static void set_reason(struct nbdp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_reason(struct nbdp_server *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
}

/* The peer broke the protocol: close after flushing what is queued. */
static ssize_t proto_error(struct nbdp_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static ssize_t proto_error(struct nbdp_server *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	s->state = NBDP_CLOSED;
	s->phase = PH_DONE;
	return -EPROTO;
}

static void reply_header(struct nbdp_server *s, uint32_t opt, uint32_t type, uint32_t len)
{
	uint8_t *d = nbdp_outbuf_reserve(&s->out, sizeof(struct nbd_wire_option_reply));
	struct nbd_wire_option_reply *w = (struct nbd_wire_option_reply *)d;

	if (!d)
		return;
	put_be64(w->magic, NBD_REP_MAGIC);
	put_be32(w->option, opt);
	put_be32(w->type, type);
	put_be32(w->length, len);
}

static void reply_ack(struct nbdp_server *s, uint32_t opt)
{
	reply_header(s, opt, NBD_REP_ACK, 0);
}

/* An error reply whose data is the message (also kept as the reason). */
static void reply_err(struct nbdp_server *s, uint32_t opt, uint32_t type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_err(struct nbdp_server *s, uint32_t opt, uint32_t type, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	n = strlen(s->reason);
	if (n > NBDP_NAME_MAX)    /* error texts are strings: at most 4096 bytes */
		n = NBDP_NAME_MAX;
	reply_header(s, opt, type, (uint32_t)n);
	nbdp_outbuf_put(&s->out, s->reason, n);
}

static uint32_t lookup_error_rep(int err)
{
	switch (err) {
	case -ENOENT:    return NBD_REP_ERR_UNKNOWN;
	case -EACCES:
	case -EPERM:     return NBD_REP_ERR_POLICY;
	case -ESHUTDOWN: return NBD_REP_ERR_SHUTDOWN;
	default:         return NBD_REP_ERR_PLATFORM;
	}
}

static const char *lookup_error_text(int err)
{
	switch (err) {
	case -ENOENT:    return "unknown export";
	case -EACCES:
	case -EPERM:     return "access denied by server policy";
	case -ESHUTDOWN: return "server is shutting down";
	default:         return strerror(-err);
	}
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* The server's own export description must follow the protocol's rules for
 * block sizes before we advertise it. Fills msg and returns false if not. */
static bool export_sane(const struct nbdp_export *e, char *msg, size_t msglen)
{
	uint32_t min = e->min_block ? e->min_block : 1;

	if (e->min_block && (!is_pow2(e->min_block) || e->min_block > MIN_BLOCK_LIMIT)) {
		snprintf(msg, msglen, "export '%s': min_block %u is not a power of two <= %u",
			 e->name, e->min_block, MIN_BLOCK_LIMIT);
		return false;
	}
	if (e->pref_block && (!is_pow2(e->pref_block) || e->pref_block < min ||
			      e->pref_block < 512)) {
		snprintf(msg, msglen,
			 "export '%s': pref_block %u is not a power of two >= max(min_block %u, 512)",
			 e->name, e->pref_block, min);
		return false;
	}
	if (e->max_block && e->max_block != UINT32_MAX && e->max_block % min) {
		snprintf(msg, msglen, "export '%s': max_block %u is not a multiple of min_block %u",
			 e->name, e->max_block, min);
		return false;
	}
	return true;
}

/* Transmission flags as sent: HAS_FLAGS always; flags that need structured
 * replies (SEND_DF) never; FAST_ZERO only with WRITE_ZEROES; nothing the
 * protocol does not define. */
static uint16_t wire_tflags(uint16_t tflags)
{
	tflags |= NBD_FLAG_HAS_FLAGS;
	tflags &= NBD_FLAG_ALL_KNOWN;
	tflags &= (uint16_t)~NBD_FLAG_SEND_DF;
	if (!(tflags & NBD_FLAG_SEND_WRITE_ZEROES))
		tflags &= (uint16_t)~NBD_FLAG_SEND_FAST_ZERO;
	return tflags;
}

/* The largest READ/WRITE the validator accepts for e: its max_block, or
 * NBDP_DEFAULT_MAX_PAYLOAD when it states none (0 or 0xffffffff), since a
 * payload is held in memory. This is also what INFO_BLOCK_SIZE advertises. */
static uint32_t effective_max_payload(const struct nbdp_export *e)
{
	if (e->max_block == 0 || e->max_block == UINT32_MAX)
		return NBDP_DEFAULT_MAX_PAYLOAD;
	return e->max_block;
}

static void advertised_block_sizes(const struct nbdp_export *e, uint32_t *min, uint32_t *pref,
				   uint32_t *max)
{
	*min = e->min_block ? e->min_block : 1;
	*pref = e->pref_block ? e->pref_block : (*min > DEFAULT_PREF_BLOCK ? *min : DEFAULT_PREF_BLOCK);
	*max = effective_max_payload(e);
}

/* Runs the server's lookup for `name` into s->scratch; 0 or -errno. */
static int do_lookup(struct nbdp_server *s, const char *name)
{
	struct nbdp_export *e = &s->scratch;
	int r;

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	r = s->ops->lookup(s->opaque, name, e);
	if (r > 0)
		r = -EIO;     /* a lookup must return 0 or -errno */
	e->name[NBDP_NAME_MAX] = '\0';
	return r;
}

static void enter_transmission(struct nbdp_server *s, bool agreed)
{
	s->exp = s->scratch;
	s->exp.tflags = wire_tflags(s->exp.tflags);
	s->block_size_agreed = agreed;
	s->state = NBDP_TRANSMISSION;
	s->phase = PH_DONE;
	set_reason(s, "entered transmission with export '%s'", s->exp.name);
}

/* ---- options ------------------------------------------------------------ */

static ssize_t opt_export_name(struct nbdp_server *s, const uint8_t *d, uint32_t len)
{
	char name[NBDP_NAME_MAX + 1];
	char msg[REASON_MAX];
	uint8_t *p;
	int r;

	if (!nbdp_str_ok(d, len))
		return proto_error(s, "NBD_OPT_EXPORT_NAME: export name contains a NUL byte");
	memcpy(name, d, len);
	name[len] = '\0';
	r = do_lookup(s, name);
	if (r < 0) {
		/* EXPORT_NAME cannot carry an error: the protocol says terminate. */
		set_reason(s, "NBD_OPT_EXPORT_NAME: export '%s' refused: %s", name,
			   lookup_error_text(r));
		s->state = NBDP_CLOSED;
		s->phase = PH_DONE;
		return 0;
	}
	if (!export_sane(&s->scratch, msg, sizeof(msg))) {
		set_reason(s, "NBD_OPT_EXPORT_NAME: %s", msg);
		s->state = NBDP_CLOSED;
		s->phase = PH_DONE;
		return 0;
	}
	p = nbdp_outbuf_reserve(&s->out, sizeof(struct nbd_wire_export_name_reply) +
				(s->no_zeroes ? 0 : NBD_EXPORT_NAME_ZEROES));
	if (p) {
		struct nbd_wire_export_name_reply *w = (struct nbd_wire_export_name_reply *)p;

		put_be64(w->size, s->scratch.size);
		put_be16(w->tflags, wire_tflags(s->scratch.tflags));
		if (!s->no_zeroes)
			memset(p + sizeof(*w), 0, NBD_EXPORT_NAME_ZEROES);
	}
	/* Block sizes cannot be negotiated through EXPORT_NAME. */
	enter_transmission(s, false);
	return 0;
}

static void send_info_export(struct nbdp_server *s, uint32_t opt, const struct nbdp_export *e)
{
	uint8_t *p;

	reply_header(s, opt, NBD_REP_INFO, sizeof(struct nbd_wire_info_export));
	p = nbdp_outbuf_reserve(&s->out, sizeof(struct nbd_wire_info_export));
	if (p) {
		struct nbd_wire_info_export *w = (struct nbd_wire_info_export *)p;

		put_be16(w->type, NBD_INFO_EXPORT);
		put_be64(w->size, e->size);
		put_be16(w->tflags, wire_tflags(e->tflags));
	}
}

static void send_info_string(struct nbdp_server *s, uint32_t opt, uint16_t type, const char *str)
{
	size_t n = strlen(str);

	if (n > NBDP_NAME_MAX)
		n = NBDP_NAME_MAX;
	reply_header(s, opt, NBD_REP_INFO, (uint32_t)(2 + n));
	nbdp_outbuf_put_be16(&s->out, type);
	nbdp_outbuf_put(&s->out, str, n);
}

static void send_info_block_size(struct nbdp_server *s, uint32_t opt, const struct nbdp_export *e)
{
	uint32_t min, pref, max;
	uint8_t *p;

	advertised_block_sizes(e, &min, &pref, &max);
	reply_header(s, opt, NBD_REP_INFO, sizeof(struct nbd_wire_info_block_size));
	p = nbdp_outbuf_reserve(&s->out, sizeof(struct nbd_wire_info_block_size));
	if (p) {
		struct nbd_wire_info_block_size *w = (struct nbd_wire_info_block_size *)p;

		put_be16(w->type, NBD_INFO_BLOCK_SIZE);
		put_be32(w->min_block, min);
		put_be32(w->pref_block, pref);
		put_be32(w->max_block, max);
	}
}

/* NBD_OPT_INFO and NBD_OPT_GO (same request and replies). */
static ssize_t opt_info_go(struct nbdp_server *s, uint32_t opt, const uint8_t *d, uint32_t len)
{
	const char *oname = nbd_opt_name(opt);
	bool want_name = false, want_desc = false, want_bs = false;
	char name[NBDP_NAME_MAX + 1];
	char msg[REASON_MAX];
	uint32_t namelen, i;
	uint16_t nreq;
	int r;

	if (len < 6) {
		reply_err(s, opt, NBD_REP_ERR_INVALID, "%s: option length %u below minimum 6",
			  oname, len);
		return 0;
	}
	namelen = get_be32(d);
	if (namelen > len - 6) {
		reply_err(s, opt, NBD_REP_ERR_INVALID,
			  "%s: name length %u beyond option length %u - 6", oname, namelen, len);
		return 0;
	}
	if (namelen > NBDP_NAME_MAX) {
		reply_err(s, opt, NBD_REP_ERR_INVALID, "%s: name length %u beyond limit %u",
			  oname, namelen, NBDP_NAME_MAX);
		return 0;
	}
	nreq = get_be16(d + 4 + namelen);
	if ((uint64_t)4 + namelen + 2 + 2ull * nreq != len) {
		reply_err(s, opt, NBD_REP_ERR_INVALID,
			  "%s: %u information requests after a %u-byte name do not fill option length %u",
			  oname, nreq, namelen, len);
		return 0;
	}
	if (!nbdp_str_ok(d + 4, namelen)) {
		reply_err(s, opt, NBD_REP_ERR_INVALID, "%s: export name contains a NUL byte", oname);
		return 0;
	}
	memcpy(name, d + 4, namelen);
	name[namelen] = '\0';
	for (i = 0; i < nreq; i++) {
		switch (get_be16(d + 4 + namelen + 2 + 2 * i)) {
		case NBD_INFO_NAME:        want_name = true; break;
		case NBD_INFO_DESCRIPTION: want_desc = true; break;
		case NBD_INFO_BLOCK_SIZE:  want_bs = true; break;
		default:                   break;   /* EXPORT is always sent; others ignored */
		}
	}

	r = do_lookup(s, name);
	if (r < 0) {
		reply_err(s, opt, lookup_error_rep(r), "%s: export '%s': %s", oname, name,
			  lookup_error_text(r));
		return 0;
	}
	if (!export_sane(&s->scratch, msg, sizeof(msg))) {
		reply_err(s, opt, NBD_REP_ERR_PLATFORM, "%s: %s", oname, msg);
		return 0;
	}
	if (opt == NBD_OPT_GO && s->scratch.min_block > 1 && !want_bs) {
		/* The document asks for the sizes first, to save a round trip. */
		send_info_block_size(s, opt, &s->scratch);
		reply_err(s, opt, NBD_REP_ERR_BLOCK_SIZE_REQD,
			  "%s: export '%s' needs minimum block size %u: request NBD_INFO_BLOCK_SIZE",
			  oname, s->scratch.name, s->scratch.min_block);
		return 0;
	}
	send_info_export(s, opt, &s->scratch);
	if (want_name)
		send_info_string(s, opt, NBD_INFO_NAME, s->scratch.name);
	if (want_desc && s->scratch.description)
		send_info_string(s, opt, NBD_INFO_DESCRIPTION, s->scratch.description);
	if (want_bs || s->scratch.min_block > 1)
		send_info_block_size(s, opt, &s->scratch);
	reply_ack(s, opt);
	if (opt == NBD_OPT_GO)
		enter_transmission(s, want_bs);
	return 0;
}

static void list_emit(void *ctx, const char *name, const char *desc)
{
	struct nbdp_server *s = ctx;
	size_t nl = name ? strlen(name) : 0;
	size_t dl = desc ? strlen(desc) : 0;

	if (!name || nl > NBDP_NAME_MAX)
		return;           /* not a name a client could ask for */
	if (dl > NBDP_NAME_MAX)
		dl = NBDP_NAME_MAX;
	reply_header(s, NBD_OPT_LIST, NBD_REP_SERVER, (uint32_t)(4 + nl + dl));
	nbdp_outbuf_put_be32(&s->out, (uint32_t)nl);
	nbdp_outbuf_put(&s->out, name, nl);
	nbdp_outbuf_put(&s->out, desc, dl);
}

static ssize_t opt_list(struct nbdp_server *s, uint32_t len)
{
	int r;

	if (len) {
		reply_err(s, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
			  "NBD_OPT_LIST: option length %u, must be 0", len);
		return 0;
	}
	if (!s->ops->list) {
		reply_err(s, NBD_OPT_LIST, NBD_REP_ERR_POLICY,
			  "NBD_OPT_LIST: listing exports is disabled on this server");
		return 0;
	}
	r = s->ops->list(s->opaque, list_emit, s);
	if (r < 0) {
		reply_err(s, NBD_OPT_LIST, r == -EACCES || r == -EPERM ? NBD_REP_ERR_POLICY :
			  r == -ESHUTDOWN ? NBD_REP_ERR_SHUTDOWN : NBD_REP_ERR_PLATFORM,
			  "NBD_OPT_LIST: %s", lookup_error_text(r));
		return 0;
	}
	reply_ack(s, NBD_OPT_LIST);
	return 0;
}

static ssize_t process_option(struct nbdp_server *s)
{
	uint32_t opt = s->opt, len = s->opt_len;

	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(s, s->data, len);
	case NBD_OPT_ABORT:
		/* Data is ignored, as the document asks. */
		reply_ack(s, opt);
		set_reason(s, "client sent NBD_OPT_ABORT");
		s->state = NBDP_CLOSED;
		s->phase = PH_DONE;
		return 0;
	case NBD_OPT_LIST:
		return opt_list(s, len);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(s, opt, s->data, len);
	case NBD_OPT_STARTTLS:
		reply_err(s, opt, NBD_REP_ERR_UNSUP, "NBD_OPT_STARTTLS: this server has no TLS");
		return 0;
	case NBD_OPT_STRUCTURED_REPLY:
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
	case NBD_OPT_EXTENDED_HEADERS:
		reply_err(s, opt, NBD_REP_ERR_UNSUP, "%s: this server sends simple replies only",
			  nbd_opt_name(opt));
		return 0;
	default:
		reply_err(s, opt, NBD_REP_ERR_UNSUP, "option %u not supported", opt);
		return 0;
	}
}

/* ---- feeding ------------------------------------------------------------ */

static ssize_t on_client_flags(struct nbdp_server *s)
{
	uint32_t f = get_be32(s->hdr);

	if (f & ~KNOWN_CLIENT_FLAGS)
		return proto_error(s, "client flags 0x%08x: unknown bits 0x%08x (known 0x%08x)",
				   f, f & ~KNOWN_CLIENT_FLAGS, KNOWN_CLIENT_FLAGS);
	s->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
	s->phase = PH_OPT_HEADER;
	nbdp_in_expect(&s->in, s->hdr, sizeof(struct nbd_wire_option));
	return 0;
}

static ssize_t on_option_header(struct nbdp_server *s)
{
	const struct nbd_wire_option *w = (const struct nbd_wire_option *)s->hdr;
	uint64_t magic = get_be64(w->magic);

	if (magic != NBD_IHAVEOPT)
		return proto_error(s, "option header: magic 0x%016llx, expected IHAVEOPT 0x%016llx",
				   (unsigned long long)magic, (unsigned long long)NBD_IHAVEOPT);
	s->opt = get_be32(w->option);
	s->opt_len = get_be32(w->length);
	if (s->opt == NBD_OPT_ABORT) {
		/* Its data (which a client should not send) is ignored unread:
		 * the session ends here whatever its length. */
		s->opt_len = 0;
		return process_option(s);
	}
	if (s->opt == NBD_OPT_EXPORT_NAME && s->opt_len > NBDP_NAME_MAX)
		return proto_error(s, "NBD_OPT_EXPORT_NAME: name length %u beyond limit %u",
				   s->opt_len, NBDP_NAME_MAX);
	if (s->opt_len > NBDP_SERVER_OPT_MAX) {
		s->discard_left = s->opt_len;
		s->phase = PH_OPT_DISCARD;
		return 0;
	}
	if (s->opt_len == 0) {
		nbdp_in_expect(&s->in, s->hdr, sizeof(struct nbd_wire_option));
		return process_option(s);
	}
	s->phase = PH_OPT_DATA;
	nbdp_in_expect(&s->in, s->data, s->opt_len);
	return 0;
}

ssize_t nbdp_server_feed(struct nbdp_server *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t left = len;
	ssize_t r = 0;

	if (s->out.failed)
		return -ENOMEM;
	while (left && s->state == NBDP_NEGOTIATING && r == 0) {
		if (s->out.len - s->out.head > NBDP_SERVER_OUT_HIGH)
			break;        /* let the caller drain our replies first */
		switch (s->phase) {
		case PH_CLIENT_FLAGS:
			if (nbdp_in_fill(&s->in, &p, &left))
				r = on_client_flags(s);
			break;
		case PH_OPT_HEADER:
			if (nbdp_in_fill(&s->in, &p, &left))
				r = on_option_header(s);
			break;
		case PH_OPT_DATA:
			if (nbdp_in_fill(&s->in, &p, &left)) {
				s->phase = PH_OPT_HEADER;
				nbdp_in_expect(&s->in, s->hdr, sizeof(struct nbd_wire_option));
				r = process_option(s);
			}
			break;
		case PH_OPT_DISCARD: {
			size_t n = left < s->discard_left ? left : s->discard_left;

			p += n;
			left -= n;
			s->discard_left -= (uint32_t)n;
			if (!s->discard_left) {
				s->phase = PH_OPT_HEADER;
				nbdp_in_expect(&s->in, s->hdr, sizeof(struct nbd_wire_option));
				reply_err(s, s->opt, NBD_REP_ERR_TOO_BIG,
					  "%s: option length %u beyond limit %u",
					  nbd_opt_name(s->opt), s->opt_len, NBDP_SERVER_OPT_MAX);
			}
			break;
		}
		case PH_DONE:
			left = 0;
			break;
		}
	}
	if (r < 0)
		return r;
	if (s->out.failed)
		return -ENOMEM;
	return p - (const uint8_t *)buf;
}

/* ---- object ------------------------------------------------------------- */

struct nbdp_server *nbdp_server_new(const struct nbdp_server_ops *ops, void *opaque)
{
	struct nbdp_server *s;
	uint8_t *p;

	if (!ops || !ops->lookup) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ops = ops;
	s->opaque = opaque;
	s->state = NBDP_NEGOTIATING;
	s->phase = PH_CLIENT_FLAGS;
	nbdp_in_expect(&s->in, s->hdr, 4);
	p = nbdp_outbuf_reserve(&s->out, sizeof(struct nbd_wire_greeting));
	if (!p) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	put_be64(((struct nbd_wire_greeting *)p)->nbdmagic, NBDMAGIC);
	put_be64(((struct nbd_wire_greeting *)p)->ihaveopt, NBD_IHAVEOPT);
	put_be16(((struct nbd_wire_greeting *)p)->hflags,
		 NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	return s;
}

void nbdp_server_free(struct nbdp_server *s)
{
	if (!s)
		return;
	nbdp_outbuf_free(&s->out);
	free(s);
}

size_t nbdp_server_pending(struct nbdp_server *s, const void **data)
{
	return nbdp_outbuf_pending(&s->out, data);
}

void nbdp_server_consumed(struct nbdp_server *s, size_t n)
{
	nbdp_outbuf_consumed(&s->out, n);
}

enum nbdp_state nbdp_server_state(const struct nbdp_server *s)
{
	return s->state;
}

const struct nbdp_export *nbdp_server_export(const struct nbdp_server *s)
{
	return s->state == NBDP_TRANSMISSION ? &s->exp : NULL;
}

bool nbdp_server_block_size_agreed(const struct nbdp_server *s)
{
	return s->state == NBDP_TRANSMISSION && s->block_size_agreed;
}

uint32_t nbdp_server_min_block(const struct nbdp_server *s)
{
	if (nbdp_server_block_size_agreed(s) && s->exp.min_block > 1)
		return s->exp.min_block;
	return 1;
}

int nbdp_server_limits(const struct nbdp_server *s, struct nbdp_limits *l)
{
	if (s->state != NBDP_TRANSMISSION)
		return -EINVAL;
	l->size = s->exp.size;
	l->tflags = s->exp.tflags;
	l->min_block = nbdp_server_min_block(s);
	l->max_payload = effective_max_payload(&s->exp);
	return 0;
}

const char *nbdp_server_reason(const struct nbdp_server *s)
{
	return s->reason;
}
