/* NBD protocol constants, wire structs and their codecs.
 *
 * Names follow the NBD protocol document (doc/proto.md of the reference
 * implementation). Everything on the wire is big-endian; the wire structs
 * below are byte arrays read and written only through get_be / put_be so the
 * host structs never alias wire memory. Do not include <linux/nbd.h> next to
 * this header: it defines some of the same names with other values. */
#ifndef NBDPROTO_NBD_H
#define NBDPROTO_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <common/compiler.h>

/* ---- Handshake magics ------------------------------------------------ */
#define NBDMAGIC              0x4e42444d41474943ULL  /* "NBDMAGIC", first 8 bytes from every server */
#define NBD_IHAVEOPT          0x49484156454F5054ULL  /* "IHAVEOPT": newstyle greeting and option header */
#define NBD_REP_MAGIC         0x3e889045565a9ULL     /* option reply header */
#define NBD_OLDSTYLE_MAGIC    0x00420281861253ULL    /* cliserv_magic of the (unsupported) oldstyle handshake */

/* ---- Handshake flags (server, 16 bits) -------------------------------- */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)

/* ---- Client flags (32 bits) -------------------------------------------- */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* ---- Options ------------------------------------------------------------ */
#define NBD_OPT_EXPORT_NAME        1
#define NBD_OPT_ABORT              2
#define NBD_OPT_LIST               3
#define NBD_OPT_PEEK_EXPORT        4   /* withdrawn; answered like any unknown option */
#define NBD_OPT_STARTTLS           5
#define NBD_OPT_INFO               6
#define NBD_OPT_GO                 7
#define NBD_OPT_STRUCTURED_REPLY   8
#define NBD_OPT_LIST_META_CONTEXT  9
#define NBD_OPT_SET_META_CONTEXT  10
#define NBD_OPT_EXTENDED_HEADERS  11

/* ---- Option reply types ------------------------------------------------- */
#define NBD_REP_ERR_BIT             (1u << 31)   /* set in every error reply type */
#define NBD_REP_ACK                 1
#define NBD_REP_SERVER              2
#define NBD_REP_INFO                3
#define NBD_REP_META_CONTEXT        4
#define NBD_REP_ERR_UNSUP           (NBD_REP_ERR_BIT | 1)
#define NBD_REP_ERR_POLICY          (NBD_REP_ERR_BIT | 2)
#define NBD_REP_ERR_INVALID         (NBD_REP_ERR_BIT | 3)
#define NBD_REP_ERR_PLATFORM        (NBD_REP_ERR_BIT | 4)
#define NBD_REP_ERR_TLS_REQD        (NBD_REP_ERR_BIT | 5)
#define NBD_REP_ERR_UNKNOWN         (NBD_REP_ERR_BIT | 6)
#define NBD_REP_ERR_SHUTDOWN        (NBD_REP_ERR_BIT | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_ERR_BIT | 8)
#define NBD_REP_ERR_TOO_BIG         (NBD_REP_ERR_BIT | 9)
#define NBD_REP_ERR_EXT_HEADER_REQD (NBD_REP_ERR_BIT | 10)

/* ---- Info types (NBD_OPT_INFO / NBD_OPT_GO) ----------------------------- */
#define NBD_INFO_EXPORT       0
#define NBD_INFO_NAME         1
#define NBD_INFO_DESCRIPTION  2
#define NBD_INFO_BLOCK_SIZE   3

/* ---- Transmission flags (16 bits) --------------------------------------- */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_ROTATIONAL         (1u << 4)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_RESIZE        (1u << 9)
#define NBD_FLAG_SEND_CACHE         (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)
/* Every transmission flag the protocol defines (bits 0..11). */
#define NBD_FLAG_ALL_KNOWN          0x0fffu

/* ---- Commands ----------------------------------------------------------- */
#define NBD_CMD_READ          0
#define NBD_CMD_WRITE         1
#define NBD_CMD_DISC          2
#define NBD_CMD_FLUSH         3
#define NBD_CMD_TRIM          4
#define NBD_CMD_CACHE         5
#define NBD_CMD_WRITE_ZEROES  6
#define NBD_CMD_BLOCK_STATUS  7

/* ---- Command flags ------------------------------------------------------ */
#define NBD_CMD_FLAG_FUA        (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE    (1u << 1)
#define NBD_CMD_FLAG_DF         (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE    (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO  (1u << 4)

/* ---- Transmission magics ------------------------------------------------ */
#define NBD_REQUEST_MAGIC       0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC  0x67446698u

/* ---- Structured replies: never negotiated by this library (its server
 * answers NBD_OPT_STRUCTURED_REPLY with NBD_REP_ERR_UNSUP); named so that
 * logs and diagnostics can recognise them. ---------------------------------- */
#define NBD_STRUCTURED_REPLY_MAGIC   0x668e33efu
#define NBD_REPLY_FLAG_DONE          (1u << 0)
#define NBD_REPLY_TYPE_NONE          0
#define NBD_REPLY_TYPE_OFFSET_DATA   1
#define NBD_REPLY_TYPE_OFFSET_HOLE   2
#define NBD_REPLY_TYPE_BLOCK_STATUS  5
#define NBD_REPLY_TYPE_ERROR         ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET  ((1u << 15) + 2)
/* base:allocation metadata context flags */
#define NBD_STATE_HOLE               (1u << 0)
#define NBD_STATE_ZERO               (1u << 1)

/* ---- Error values carried in replies (not host errno values) ------------ */
#define NBD_SUCCESS     0
#define NBD_EPERM       1
#define NBD_EIO         5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN 108

/* ---- Sizes -------------------------------------------------------------- */
#define NBD_REQUEST_SIZE        28
#define NBD_SIMPLE_REPLY_SIZE   16
/* Longest string (export name, description, error text) the protocol allows. */
#define NBDP_NAME_MAX         4096
/* The reserved zeroes after an EXPORT_NAME reply unless NO_ZEROES was agreed. */
#define NBD_EXPORT_NAME_ZEROES  124
/* Largest READ/WRITE payload a client may send without negotiated block
 * sizes (the protocol document's interoperable maximum, 32 MiB); also the
 * default max_payload when an export states no maximum. */
#define NBDP_DEFAULT_MAX_PAYLOAD (32u * 1024 * 1024)

/* ---- Wire layouts (byte arrays: read/write through the codecs) ---------- */
struct nbd_wire_greeting {             /* S: newstyle greeting */
	uint8_t nbdmagic[8];
	uint8_t ihaveopt[8];
	uint8_t hflags[2];
};
STATIC_ASSERT_SIZE(struct nbd_wire_greeting, 18);

struct nbd_wire_option {               /* C: option header, data follows */
	uint8_t magic[8];
	uint8_t option[4];
	uint8_t length[4];
};
STATIC_ASSERT_SIZE(struct nbd_wire_option, 16);

struct nbd_wire_option_reply {         /* S: option reply header, data follows */
	uint8_t magic[8];
	uint8_t option[4];
	uint8_t type[4];
	uint8_t length[4];
};
STATIC_ASSERT_SIZE(struct nbd_wire_option_reply, 20);

struct nbd_wire_export_name_reply {    /* S: EXPORT_NAME success (+124 zeroes unless NO_ZEROES) */
	uint8_t size[8];
	uint8_t tflags[2];
};
STATIC_ASSERT_SIZE(struct nbd_wire_export_name_reply, 10);

struct nbd_wire_info_export {          /* S: NBD_REP_INFO data, NBD_INFO_EXPORT */
	uint8_t type[2];
	uint8_t size[8];
	uint8_t tflags[2];
};
STATIC_ASSERT_SIZE(struct nbd_wire_info_export, 12);

struct nbd_wire_info_block_size {      /* S: NBD_REP_INFO data, NBD_INFO_BLOCK_SIZE */
	uint8_t type[2];
	uint8_t min_block[4];
	uint8_t pref_block[4];
	uint8_t max_block[4];
};
STATIC_ASSERT_SIZE(struct nbd_wire_info_block_size, 14);

struct nbd_wire_request {              /* C: transmission request, WRITE payload follows */
	uint8_t magic[4];
	uint8_t flags[2];
	uint8_t type[2];
	uint8_t cookie[8];
	uint8_t offset[8];
	uint8_t length[4];
};
STATIC_ASSERT_SIZE(struct nbd_wire_request, NBD_REQUEST_SIZE);

struct nbd_wire_simple_reply {         /* S: simple reply, READ payload follows on success */
	uint8_t magic[4];
	uint8_t error[4];
	uint8_t cookie[8];
};
STATIC_ASSERT_SIZE(struct nbd_wire_simple_reply, NBD_SIMPLE_REPLY_SIZE);

/* ---- Host forms and codecs ---------------------------------------------- */
struct nbd_request {
	uint16_t flags;     /* NBD_CMD_FLAG_* */
	uint16_t type;      /* NBD_CMD_* */
	uint64_t cookie;    /* the "handle": echoed in the reply */
	uint64_t offset;
	uint32_t length;
};

struct nbd_simple_reply {
	uint32_t error;     /* NBD_E* (0 = success) */
	uint64_t cookie;
};

void nbd_request_encode(uint8_t out[NBD_REQUEST_SIZE], const struct nbd_request *r);
/* Returns 0, or -EPROTO when the magic is not NBD_REQUEST_MAGIC (*r untouched). */
int  nbd_request_decode(const uint8_t in[NBD_REQUEST_SIZE], struct nbd_request *r);
void nbd_reply_encode(uint8_t out[NBD_SIMPLE_REPLY_SIZE], const struct nbd_simple_reply *r);
/* Returns 0, or -EPROTO when the magic is not NBD_SIMPLE_REPLY_MAGIC. */
int  nbd_reply_decode(const uint8_t in[NBD_SIMPLE_REPLY_SIZE], struct nbd_simple_reply *r);

/* Bytes of payload that follow request header r on the wire (its length for
 * NBD_CMD_WRITE, 0 otherwise). Validate the request before reading them. */
static inline uint32_t nbd_request_payload_len(const struct nbd_request *r)
{
	return r->type == NBD_CMD_WRITE ? r->length : 0;
}

/* Names for logs and messages: "NBD_CMD_READ", "NBD_EINVAL", "NBD_OPT_GO",
 * "NBD_REP_ERR_UNKNOWN", "NBD_INFO_BLOCK_SIZE". Unknown values give a static
 * "unknown" string (never NULL). */
const char *nbd_cmd_name(uint16_t type);
const char *nbd_err_name(uint32_t err);
const char *nbd_opt_name(uint32_t opt);
const char *nbd_rep_name(uint32_t rep);
const char *nbd_info_name(uint16_t info);

/* Host errno (positive) -> NBD error for a reply: EPERM/EROFS -> NBD_EPERM,
 * ENOMEM -> NBD_ENOMEM, EINVAL -> NBD_EINVAL, ENOSPC/EDQUOT/EFBIG -> NBD_ENOSPC,
 * EOVERFLOW -> NBD_EOVERFLOW, ENOTSUP/EOPNOTSUPP -> NBD_ENOTSUP,
 * ESHUTDOWN -> NBD_ESHUTDOWN, 0 -> 0, anything else -> NBD_EIO. */
uint32_t nbd_errno_to_nbd(int err);
/* NBD error -> positive host errno; unknown values -> EIO (the protocol says
 * a client should treat an unknown error as EIO-like), 0 -> 0. */
int nbd_err_to_errno(uint32_t nbd_err);

/* ---- What both machines know about an export ---------------------------- */
struct nbdp_export {
	uint64_t size;
	uint16_t tflags;                  /* NBD_FLAG_* for transmission; the server machine adds HAS_FLAGS */
	uint32_t min_block, pref_block, max_block;  /* INFO_BLOCK_SIZE; 0 = no constraint / not advertised */
	char name[NBDP_NAME_MAX + 1];     /* NUL-terminated */
	const char *description;          /* may be NULL. Server side: owned by the server's lookup();
	                                   * client side: owned by the client machine */
	void *handle;                     /* server side: the server's own export object */
};

#endif /* NBDPROTO_NBD_H */
