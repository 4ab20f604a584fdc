/* Protocol value -> name, for logs and error messages. */
#include <nbdproto/nbd.h>

#define NAME(x) case x: return #x

const char *nbd_cmd_name(uint16_t type)
{
	switch (type) {
	NAME(NBD_CMD_READ);
	NAME(NBD_CMD_WRITE);
	NAME(NBD_CMD_DISC);
	NAME(NBD_CMD_FLUSH);
	NAME(NBD_CMD_TRIM);
	NAME(NBD_CMD_CACHE);
	NAME(NBD_CMD_WRITE_ZEROES);
	NAME(NBD_CMD_BLOCK_STATUS);
	default: return "NBD_CMD_unknown";
	}
}

const char *nbd_err_name(uint32_t err)
{
	switch (err) {
	NAME(NBD_SUCCESS);
	NAME(NBD_EPERM);
	NAME(NBD_EIO);
	NAME(NBD_ENOMEM);
	NAME(NBD_EINVAL);
	NAME(NBD_ENOSPC);
	NAME(NBD_EOVERFLOW);
	NAME(NBD_ENOTSUP);
	NAME(NBD_ESHUTDOWN);
	default: return "NBD_E_unknown";
	}
}

const char *nbd_opt_name(uint32_t opt)
{
	switch (opt) {
	NAME(NBD_OPT_EXPORT_NAME);
	NAME(NBD_OPT_ABORT);
	NAME(NBD_OPT_LIST);
	NAME(NBD_OPT_PEEK_EXPORT);
	NAME(NBD_OPT_STARTTLS);
	NAME(NBD_OPT_INFO);
	NAME(NBD_OPT_GO);
	NAME(NBD_OPT_STRUCTURED_REPLY);
	NAME(NBD_OPT_LIST_META_CONTEXT);
	NAME(NBD_OPT_SET_META_CONTEXT);
	NAME(NBD_OPT_EXTENDED_HEADERS);
	default: return "NBD_OPT_unknown";
	}
}

const char *nbd_rep_name(uint32_t rep)
{
	switch (rep) {
	NAME(NBD_REP_ACK);
	NAME(NBD_REP_SERVER);
	NAME(NBD_REP_INFO);
	NAME(NBD_REP_META_CONTEXT);
	NAME(NBD_REP_ERR_UNSUP);
	NAME(NBD_REP_ERR_POLICY);
	NAME(NBD_REP_ERR_INVALID);
	NAME(NBD_REP_ERR_PLATFORM);
	NAME(NBD_REP_ERR_TLS_REQD);
	NAME(NBD_REP_ERR_UNKNOWN);
	NAME(NBD_REP_ERR_SHUTDOWN);
	NAME(NBD_REP_ERR_BLOCK_SIZE_REQD);
	NAME(NBD_REP_ERR_TOO_BIG);
	NAME(NBD_REP_ERR_EXT_HEADER_REQD);
	default: return (rep & NBD_REP_ERR_BIT) ? "NBD_REP_ERR_unknown" : "NBD_REP_unknown";
	}
}

const char *nbd_info_name(uint16_t info)
{
	switch (info) {
	NAME(NBD_INFO_EXPORT);
	NAME(NBD_INFO_NAME);
	NAME(NBD_INFO_DESCRIPTION);
	NAME(NBD_INFO_BLOCK_SIZE);
	default: return "NBD_INFO_unknown";
	}
}
