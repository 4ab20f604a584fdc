/* Input accumulation and peer-string helpers shared by the machines. */
#include <string.h>

#include "internal.h"

bool nbdp_in_fill(struct nbdp_in *in, const uint8_t **p, size_t *len)
{
	size_t n = in->want - in->have;

	if (n > *len)
		n = *len;
	if (n) {
		memcpy(in->buf + in->have, *p, n);
		in->have += n;
		*p += n;
		*len -= n;
	}
	return in->have == in->want;
}

bool nbdp_str_ok(const uint8_t *s, size_t n)
{
	return memchr(s, 0, n) == NULL;
}

void nbdp_str_sanitize(char *dst, size_t dstlen, const uint8_t *s, size_t n)
{
	size_t i;

	if (n > dstlen - 1)
		n = dstlen - 1;
	for (i = 0; i < n; i++)
		dst[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
	dst[n] = '\0';
}
