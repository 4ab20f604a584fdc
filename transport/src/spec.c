/* Link strings: which backend, which files or device (docs/transport.md
 * "Link strings"). Pure parsing, no I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define FORMS "accepted forms: shm:PATH, shm:bar=PATH[,win=PATH[,win_base=ADDR]][,win_max=BYTES][,irq=ivshmem:SOCKET[,irq_peer=ID]], " \
	      "pci:DDDD:BB:DD.F[,bar=N], pci:VVVV:DDDD[,bar=N], epf:/dev/DEVICE[,bar_only]"

/* ivshmem peer IDs are 16-bit (the Doorbell register's upper half). */
#define IVSH_ID_MAX 65535

/* The largest BAR index a PCI function has (BAR0..BAR5). */
#define PCI_MAX_BAR 5

static int bad(char *err, size_t errlen, const char *spec, const char *why)
{
	npt_seterr(err, errlen, "link: bad link string \"%s\": %s; " FORMS, spec, why);
	return -EINVAL;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;

	if (!*v || *v == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 0);
	return (errno || *end) ? -EINVAL : 0;
}

static int parse_double(const char *v, double *out)
{
	char *end;

	if (!*v)
		return -EINVAL;
	errno = 0;
	*out = strtod(v, &end);
	return (errno || *end || *out < 0) ? -EINVAL : 0;
}

static int copy_path(char *dst, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= PATH_MAX)
		return -EINVAL;
	memcpy(dst, v, n + 1);
	return 0;
}

/* One "key=value" option common to several forms; -ENOENT if unknown. */
static int parse_option(struct npt_spec *s, const char *key, const char *val, char *why, size_t wl)
{
	uint64_t u;

	if (!strcmp(key, "dma_gbps")) {
		if (parse_double(val, &s->dma_gbps))
			return snprintf(why, wl, "dma_gbps \"%s\" is not a non-negative number", val), -EINVAL;
		return 0;
	}
	if (!strcmp(key, "dma_lat_us")) {
		if (parse_double(val, &s->dma_lat_us))
			return snprintf(why, wl, "dma_lat_us \"%s\" is not a non-negative number", val), -EINVAL;
		return 0;
	}
	if (!strcmp(key, "bar") && s->kind == NPT_KIND_PCI) {
		if (parse_u64(val, &u) || u > PCI_MAX_BAR)
			return snprintf(why, wl, "bar \"%s\" is not a BAR index 0..%d", val, PCI_MAX_BAR), -EINVAL;
		s->bar = (int)u;
		return 0;
	}
	return -ENOENT;
}

static int parse_shm(struct npt_spec *s, const char *spec, char *rest, char *err, size_t errlen)
{
	char why[PATH_MAX + 96];
	bool kv = !strncmp(rest, "bar=", 4);
	char *save = NULL, *tok;
	bool first = true, have_base = false, have_peer = false;

	for (tok = strtok_r(rest, ",", &save); tok; tok = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(tok, '=');

		if (first && !kv) {
			if (copy_path(s->bar_path, tok) ||
			    strlen(tok) + 4 >= PATH_MAX)
				return bad(err, errlen, spec, "shm: PATH is empty or too long");
			memcpy(s->win_path, tok, strlen(tok));
			memcpy(s->win_path + strlen(tok), ".win", 5);
			s->win_default = true;
			continue;
		}
		if (!eq) {
			snprintf(why, sizeof(why), "shm: \"%s\" is not key=value", tok);
			return bad(err, errlen, spec, why);
		}
		*eq = '\0';
		if (kv && !strcmp(tok, "bar")) {
			if (copy_path(s->bar_path, eq + 1))
				return bad(err, errlen, spec, "shm: bar= PATH is empty or too long");
		} else if (kv && !strcmp(tok, "win")) {
			if (copy_path(s->win_path, eq + 1))
				return bad(err, errlen, spec, "shm: win= PATH is empty or too long");
		} else if (!strcmp(tok, "irq")) {
			const char *v = eq + 1;

			if (strncmp(v, "ivshmem:", 8) || !v[8] || strlen(v + 8) >= sizeof(s->irq_sock)) {
				snprintf(why, sizeof(why), "shm: irq \"%s\" is not ivshmem:SOCKET (a unix socket "
					 "path of 1..%zu bytes)", v, sizeof(s->irq_sock) - 1);
				return bad(err, errlen, spec, why);
			}
			memcpy(s->irq_sock, v + 8, strlen(v + 8) + 1);
		} else if (!strcmp(tok, "irq_peer")) {
			uint64_t id;

			if (parse_u64(eq + 1, &id) || id > IVSH_ID_MAX) {
				snprintf(why, sizeof(why), "shm: irq_peer \"%s\" is not an ivshmem peer ID 0..%d",
					 eq + 1, IVSH_ID_MAX);
				return bad(err, errlen, spec, why);
			}
			s->irq_peer = (int64_t)id;
			have_peer = true;
		} else if (!strcmp(tok, "win_max")) {
			if (parse_u64(eq + 1, &s->win_max) || s->win_max < NPL_PAGE) {
				snprintf(why, sizeof(why), "shm: win_max \"%s\" is not a size of at least %d bytes",
					 eq + 1, NPL_PAGE);
				return bad(err, errlen, spec, why);
			}
		} else if (kv && !strcmp(tok, "win_base")) {
			if (parse_u64(eq + 1, &s->win_base) || s->win_base % NPL_PAGE) {
				snprintf(why, sizeof(why), "shm: win_base \"%s\" is not a multiple of %d",
					 eq + 1, NPL_PAGE);
				return bad(err, errlen, spec, why);
			}
			have_base = true;
		} else {
			int r = parse_option(s, tok, eq + 1, why, sizeof(why));

			if (r == -ENOENT)
				snprintf(why, sizeof(why), "shm: unknown option \"%s\"", tok);
			if (r)
				return bad(err, errlen, spec, why);
		}
	}
	if (!s->bar_path[0])
		return bad(err, errlen, spec, "shm: no BAR file");
	if (have_base && !s->win_path[0])
		return bad(err, errlen, spec, "shm: win_base without win=");
	if (have_peer && !s->irq_sock[0])
		return bad(err, errlen, spec, "shm: irq_peer without irq=");
	return 0;
}

static int parse_pci(struct npt_spec *s, const char *spec, char *rest, char *err, size_t errlen)
{
	char why[256];
	char *save = NULL, *tok = strtok_r(rest, ",", &save);
	unsigned a, b, c, d;
	int n = 0;

	s->bar = -1;
	if (!tok)
		return bad(err, errlen, spec, "pci: no device");
	if (strchr(tok, '.')) {
		if (sscanf(tok, "%x:%x:%x.%x%n", &a, &b, &c, &d, &n) == 4 && !tok[n]) {
			s->domain = a; s->bus = b; s->dev = c; s->func = d;
		} else if (n = 0, sscanf(tok, "%x:%x.%x%n", &b, &c, &d, &n) == 3 && !tok[n]) {
			s->domain = 0; s->bus = b; s->dev = c; s->func = d;
		} else {
			snprintf(why, sizeof(why), "pci: \"%s\" is not DDDD:BB:DD.F", tok);
			return bad(err, errlen, spec, why);
		}
		if (s->domain > 0xffff || s->bus > 0xff || s->dev > 0x1f || s->func > 7) {
			snprintf(why, sizeof(why), "pci: \"%s\" out of range (bus <= ff, device <= 1f, function <= 7)", tok);
			return bad(err, errlen, spec, why);
		}
	} else {
		if (sscanf(tok, "%x:%x%n", &a, &b, &n) != 2 || tok[n] || a > 0xffff || b > 0xffff) {
			snprintf(why, sizeof(why), "pci: \"%s\" is neither DDDD:BB:DD.F nor VVVV:DDDD", tok);
			return bad(err, errlen, spec, why);
		}
		s->pci_by_id = true;
		s->vendor = a; s->device = b;
	}
	while ((tok = strtok_r(NULL, ",", &save))) {
		char *eq = strchr(tok, '=');
		int r;

		if (!eq) {
			snprintf(why, sizeof(why), "pci: \"%s\" is not key=value", tok);
			return bad(err, errlen, spec, why);
		}
		*eq = '\0';
		r = parse_option(s, tok, eq + 1, why, sizeof(why));
		if (r == -ENOENT)
			snprintf(why, sizeof(why), "pci: unknown option \"%s\"", tok);
		if (r)
			return bad(err, errlen, spec, why);
	}
	return 0;
}

int npt_spec_parse(const char *spec, struct npt_spec *s, char *err, size_t errlen)
{
	char buf[PATH_MAX * 2 + 128];
	size_t n;

	memset(s, 0, sizeof(*s));
	s->bar = -1;
	s->irq_peer = -1;
	if (!spec)
		return bad(err, errlen, "(null)", "no link string");
	n = strlen(spec);
	if (n >= sizeof(buf))
		return bad(err, errlen, "...", "link string too long");
	memcpy(buf, spec, n + 1);
	if (!strncmp(buf, "shm:", 4)) {
		s->kind = NPT_KIND_SHM;
		return parse_shm(s, spec, buf + 4, err, errlen);
	}
	if (!strncmp(buf, "pci:", 4)) {
		s->kind = NPT_KIND_PCI;
		return parse_pci(s, spec, buf + 4, err, errlen);
	}
	if (!strncmp(buf, "epf:", 4)) {
		char *save = NULL, *tok = strtok_r(buf + 4, ",", &save);
		char why[256];

		s->kind = NPT_KIND_EPF;
		if (!tok || buf[4] == ',' || copy_path(s->epf_path, tok))
			return bad(err, errlen, spec, "epf: no device path");
		while ((tok = strtok_r(NULL, ",", &save))) {
			if (!strcmp(tok, "bar_only")) {
				s->epf_bar_only = true;
				continue;
			}
			snprintf(why, sizeof(why), "epf: unknown option \"%s\"", tok);
			return bad(err, errlen, spec, why);
		}
		return 0;
	}
	return bad(err, errlen, spec, "unknown backend prefix");
}
