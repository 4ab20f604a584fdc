/* /etc/nbdtab support: "nbd-pcie-client nbdX" takes its settings from the
 * nbdtab line of that device, as nbd-client does. A line is
 *   DEVICE HOST EXPORT [OPTIONS]
 * with OPTIONS comma separated. nbd-pcie-client needs pcie=LINK there; HOST
 * is not used (write "pcie" or "-"). Keys understood: pcie, bs, timeout,
 * dead-timeout, conns, identifier, persist, no_optgo, swap, readonly. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <common/compiler.h>

#include "internal.h"

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); r = -EINVAL; goto out; } while (0)

/* Strings from the file are owned by the options (npc_opts_release). */
static char *keep(struct npc_opts *o, const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(o->owned); i++)
		if (!o->owned[i])
			return o->owned[i] = strdup(s);
	return NULL;
}

void npc_opts_release(struct npc_opts *o)
{
	for (size_t i = 0; i < ARRAY_SIZE(o->owned); i++) {
		free(o->owned[i]);
		o->owned[i] = NULL;
	}
}

static int apply_opt(struct npc_opts *o, char *kv, const char *path, unsigned lineno,
		     char *err, size_t errlen)
{
	char *val = strchr(kv, '=');
	uint64_t v;
	int r = 0;

	if (val)
		*val++ = '\0';
	if (!strcmp(kv, "persist") && !val) {
		o->persist = true;
	} else if (!strcmp(kv, "no_optgo") && !val) {
		o->no_optgo = true;
	} else if (!strcmp(kv, "swap") && !val) {
		o->swap = true;
	} else if (!strcmp(kv, "readonly") && !val) {
		o->readonly = true;
	} else if (!strcmp(kv, "pcie") && val && *val) {
		if (!(o->link = keep(o, val)))
			return -ENOMEM;
	} else if (!strcmp(kv, "identifier") && val && *val) {
		if (!(o->identifier = keep(o, val)))
			return -ENOMEM;
	} else if (!strcmp(kv, "bs") && val) {
		if (npc_parse_u64(val, NPC_BLOCK_MIN, NPC_BLOCK_MAX, &v) || (v & (v - 1)))
			FAIL("%s:%u: bs=%s: block size must be 512, 1024, 2048 or 4096", path, lineno, val);
		o->block_size = (uint32_t)v;
	} else if (!strcmp(kv, "timeout") && val) {
		if (npc_parse_u64(val, 0, UINT32_MAX, &v))
			FAIL("%s:%u: timeout=%s: must be seconds from 0 to %u", path, lineno, val, UINT32_MAX);
		o->timeout = v;
	} else if (!strcmp(kv, "dead-timeout") && val) {
		if (npc_parse_u64(val, 0, UINT32_MAX, &v))
			FAIL("%s:%u: dead-timeout=%s: must be seconds from 0 to %u", path, lineno, val,
			     UINT32_MAX);
		o->dead_timeout = v;
	} else if (!strcmp(kv, "conns") && val) {
		if (npc_parse_u64(val, 1, NPC_CONNECTIONS_MAX, &v))
			FAIL("%s:%u: conns=%s: connections must be from 1 to %u", path, lineno, val,
			     NPC_CONNECTIONS_MAX);
		o->connections = (unsigned)v;
	} else {
		FAIL("%s:%u: option '%s%s%s' is not supported for a PCIe link (known: pcie=, bs=, timeout=, dead-timeout=, conns=, identifier=, persist, no_optgo, swap, readonly)",
		     path, lineno, kv, val ? "=" : "", val ? val : "");
	}
out:
	return r;
}

int npc_nbdtab_apply(const char *path, struct npc_opts *o, char *err, size_t errlen)
{
	FILE *f;
	char line[4096 + 512], *save, *dev, *host, *exp, *opts;
	unsigned lineno = 0;
	int r = -ENOENT;

	if (!path)
		path = "/etc/nbdtab";
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s: cannot read the nbdtab for %s", path, strerror(errno),
			 o->device);
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		dev = strtok_r(line, " \t\r\n", &save);
		if (!dev)
			continue;
		if (npc_cli_device_index(dev) != o->dev_index)
			continue;
		host = strtok_r(NULL, " \t\r\n", &save);
		exp = host ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		opts = exp ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		if (!exp) {
			snprintf(err, errlen, "%s:%u: line for %s needs DEVICE HOST EXPORT [OPTIONS]",
				 path, lineno, dev);
			r = -EINVAL;
			goto out;
		}
		if (!(o->name = keep(o, exp))) {
			r = -ENOMEM;
			goto out;
		}
		r = 0;
		for (char *s2, *kv = opts ? strtok_r(opts, ",", &s2) : NULL; kv;
		     kv = strtok_r(NULL, ",", &s2))
			if ((r = apply_opt(o, kv, path, lineno, err, errlen)))
				goto out;
		if (!o->link) {
			snprintf(err, errlen, "%s:%u: line for %s has no pcie=LINK option", path, lineno,
				 dev);
			r = -EINVAL;
		}
		goto out;
	}
	snprintf(err, errlen, "%s: no line for %s: add 'nbd%d pcie EXPORT pcie=LINK'", path,
		 o->device, o->dev_index);
out:
	fclose(f);
	return r;
}
