/* libFuzzer target: the server handshake machine fed the bytes a client
 * sends. The first input byte chooses how the rest is split into feeds. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <nbdproto/server.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	if (!strcmp(name, "") || !strcmp(name, "disk")) {
		out->size = 1 << 20;
		out->tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;
		out->description = "fuzz disk";
		return 0;
	}
	if (!strcmp(name, "aligned")) {
		out->size = 1 << 20;
		out->min_block = 512;
		out->max_block = 65536;
		return 0;
	}
	if (!strcmp(name, "denied"))
		return -EACCES;
	return -ENOENT;
}

static int list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc), void *ctx)
{
	emit(ctx, "disk", "fuzz disk");
	emit(ctx, "aligned", NULL);
	return 0;
}

static const struct nbdp_server_ops ops = { .lookup = lookup, .list = list };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbdp_server *s;
	size_t chunk, off = 0;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++;
	size--;
	s = nbdp_server_new(&ops, NULL);
	if (!s)
		return 0;
	while (off < size && nbdp_server_state(s) == NBDP_NEGOTIATING) {
		size_t n = size - off < chunk ? size - off : chunk;
		const void *out;
		size_t pending;
		ssize_t r = nbdp_server_feed(s, data + off, n);

		if (r < 0) {
			if (nbdp_server_state(s) != NBDP_CLOSED)
				__builtin_trap();       /* an error must close */
			break;
		}
		if ((size_t)r > n)
			__builtin_trap();
		pending = nbdp_server_pending(s, &out);
		if (r == 0 && nbdp_server_state(s) == NBDP_NEGOTIATING && pending <= NBDP_SERVER_OUT_HIGH)
			__builtin_trap();               /* no progress without a reason */
		/* Touch every output byte so ASan sees a bad length. */
		if (pending) {
			volatile uint8_t sink = 0;
			size_t i;

			for (i = 0; i < pending; i++)
				sink ^= ((const uint8_t *)out)[i];
			(void)sink;
			nbdp_server_consumed(s, pending);
		}
		off += (size_t)r;
	}
	if (nbdp_server_state(s) == NBDP_TRANSMISSION) {
		struct nbdp_limits l;

		if (!nbdp_server_export(s) || nbdp_server_limits(s, &l) != 0)
			__builtin_trap();
		if (!(l.tflags & NBD_FLAG_HAS_FLAGS))
			__builtin_trap();
	}
	nbdp_server_free(s);
	return 0;
}
