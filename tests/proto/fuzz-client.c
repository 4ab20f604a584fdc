/* libFuzzer target: the client handshake machine fed the bytes a server
 * sends. The first input byte chooses the goal, no_optgo and how the rest
 * is split into feeds. */
#include <stdint.h>
#include <string.h>

#include <nbdproto/client.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_list(void *ctx, const char *name, const char *desc)
{
	size_t *count = ctx;

	if (strlen(name) > NBDP_NAME_MAX || strlen(desc) > NBDP_NAME_MAX)
		__builtin_trap();
	(*count)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum nbdp_client_goal goals[] = { NBDP_GOAL_GO, NBDP_GOAL_INFO, NBDP_GOAL_LIST };
	struct nbdp_client_opts o = { .export_name = "disk", .on_list = on_list };
	struct nbdp_client *c;
	size_t listed = 0, chunk, off = 0;

	if (size < 1)
		return 0;
	o.goal = goals[data[0] % 3];
	o.no_optgo = data[0] & 0x80;
	o.list_ctx = &listed;
	chunk = (size_t)(data[0] & 0x7c) + 1;
	data++;
	size--;
	c = nbdp_client_new(&o);
	if (!c)
		return 0;
	while (off < size && nbdp_client_state(c) == NBDP_C_NEGOTIATING) {
		size_t n = size - off < chunk ? size - off : chunk;
		const void *out;
		size_t pending;
		ssize_t r = nbdp_client_feed(c, data + off, n);

		if (r < 0) {
			if (nbdp_client_state(c) != NBDP_C_FAILED || nbdp_client_error(c)[0] == '\0')
				__builtin_trap();       /* an error must fail with a message */
			break;
		}
		if ((size_t)r > n)
			__builtin_trap();
		if (r == 0 && nbdp_client_state(c) == NBDP_C_NEGOTIATING)
			__builtin_trap();               /* the client never stalls on input */
		pending = nbdp_client_pending(c, &out);
		nbdp_client_consumed(c, pending);
		off += (size_t)r;
	}
	if (nbdp_client_state(c) == NBDP_C_NEGOTIATING)
		nbdp_client_eof(c);
	if (nbdp_client_state(c) == NBDP_C_TRANSMISSION) {
		const struct nbdp_export *e = nbdp_client_export(c);

		if (!e || strlen(e->name) > NBDP_NAME_MAX)
			__builtin_trap();
	}
	if (nbdp_client_state(c) == NBDP_C_FAILED && nbdp_client_error_code(c) >= 0)
		__builtin_trap();
	nbdp_client_free(c);
	return 0;
}
