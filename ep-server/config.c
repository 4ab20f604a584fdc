/* The configuration: nbd-server's config file format, read with GLib's key
 * file API. A user's nbd-server config works unchanged: [generic] holds the
 * server's settings, every other group is an export named by the group.
 * Keys nbd-server has and we do not implement produce a warning; invalid
 * values and conflicts are errors naming file, group, key and value. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <glib.h>

#include "common/compiler.h"
#include "internal.h"

enum key_kind { K_STR, K_BOOL, K_UINT, K_SIZE, K_LIST };

struct key_def {
	const char *name;
	enum key_kind kind;
	bool implemented;
	unsigned max;            /* K_UINT: largest value accepted */
};

/* [generic] keys: ours and nbd-server's. */
static const struct key_def generic_keys[] = {
	{ "user", K_STR, true, 0 },
	{ "group", K_STR, true, 0 },
	{ "listenaddr", K_STR, true, 0 },
	{ "port", K_STR, true, 0 },
	{ "includedir", K_STR, true, 0 },
	{ "allowlist", K_BOOL, true, 0 },
	{ "unixsock", K_STR, true, 0 },
	{ "duallisten", K_BOOL, true, 0 },
	{ "max_threads", K_UINT, true, SRV_MAX_THREADS },
	{ "maxconnections", K_UINT, true, INT_MAX },
	{ "pcie", K_LIST, true, 0 },
	{ "pcie_channels", K_UINT, true, 64 },           /* NPT_MAX_CHANNELS */
	{ "pcie_ring_entries", K_UINT, true, 1024 },     /* NPT_MAX_RING_ENTRIES */
	{ "pcie_data_per_channel", K_SIZE, true, 0 },
	/* nbd-server's, not implemented here */
	{ "force_tls", K_BOOL, false, 0 },
	{ "certfile", K_STR, false, 0 },
	{ "keyfile", K_STR, false, 0 },
	{ "cacertfile", K_STR, false, 0 },
	{ "tlsprio", K_STR, false, 0 },
};

/* Export keys: ours and nbd-server's. */
static const struct key_def export_keys[] = {
	{ "exportname", K_STR, true, 0 },
	{ "readonly", K_BOOL, true, 0 },
	{ "filesize", K_SIZE, true, 0 },
	{ "flush", K_BOOL, true, 0 },
	{ "fua", K_BOOL, true, 0 },
	{ "trim", K_BOOL, true, 0 },
	{ "rotational", K_BOOL, true, 0 },
	{ "sync", K_BOOL, true, 0 },
	{ "copyonwrite", K_BOOL, true, 0 },
	{ "sparse_cow", K_BOOL, true, 0 },
	{ "cowdir", K_STR, true, 0 },
	{ "maxconnections", K_UINT, true, INT_MAX },
	{ "authfile", K_STR, true, 0 },
	/* nbd-server's, not implemented here */
	{ "virtstyle", K_STR, false, 0 },
	{ "prerun", K_STR, false, 0 },
	{ "postrun", K_STR, false, 0 },
	{ "transactionlog", K_STR, false, 0 },
	{ "multifile", K_BOOL, false, 0 },
	{ "treefiles", K_BOOL, false, 0 },
	{ "waitfile", K_BOOL, false, 0 },
	{ "sdp", K_BOOL, false, 0 },
	{ "temporary", K_BOOL, false, 0 },
	{ "datalog", K_BOOL, false, 0 },
	{ "force_tls", K_BOOL, false, 0 },
	{ "splice", K_BOOL, false, 0 },
};

static const struct key_def *find_key(const struct key_def *t, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, key) == 0)
			return &t[i];
	return NULL;
}

void srv_config_init(struct srv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_threads = SRV_DEFAULT_THREADS;
}

int srv_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A value of one key, parsed and checked against its kind. */
struct val {
	char *str;
	bool b;
	uint64_t u;
	char **list;
};

static int parse_value(GKeyFile *kf, const char *file, const char *group,
                       const struct key_def *k, struct val *v, char *err, size_t errlen)
{
	g_autofree char *raw = g_key_file_get_value(kf, group, k->name, NULL);
	GError *ge = NULL;

	memset(v, 0, sizeof(*v));
	if (!raw) {
		snprintf(err, errlen, "config %s: [%s] %s: cannot read value", file, group, k->name);
		return -EINVAL;
	}
	switch (k->kind) {
	case K_STR:
		v->str = g_key_file_get_string(kf, group, k->name, &ge);
		if (!v->str) {
			snprintf(err, errlen, "config %s: [%s] %s = '%s': %s", file, group, k->name,
			         raw, ge ? ge->message : "invalid string");
			g_clear_error(&ge);
			return -EINVAL;
		}
		if (!*v->str) {
			snprintf(err, errlen, "config %s: [%s] %s = '': empty value", file, group,
			         k->name);
			g_free(v->str);
			v->str = NULL;
			return -EINVAL;
		}
		return 0;
	case K_BOOL: {
		g_autofree char *s = g_strstrip(g_strdup(raw));
		if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
			v->b = true;
		} else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
			v->b = false;
		} else {
			snprintf(err, errlen, "config %s: [%s] %s = '%s': not a boolean (true or false)",
			         file, group, k->name, raw);
			return -EINVAL;
		}
		return 0;
	}
	case K_UINT:
	case K_SIZE: {
		g_autofree char *s = g_strstrip(g_strdup(raw));
		uint64_t u;
		int rc;
		if (k->kind == K_SIZE) {
			rc = srv_parse_size(s, &u);
		} else {
			char *end;
			errno = 0;
			unsigned long long x = strtoull(s, &end, 10);
			rc = (errno || end == s || *end || *s == '-') ? -EINVAL : 0;
			u = x;
		}
		if (rc) {
			snprintf(err, errlen, "config %s: [%s] %s = '%s': not a %s", file, group,
			         k->name, raw, k->kind == K_SIZE ?
			         "size (bytes, optional K/M/G/T suffix)" : "non-negative integer");
			return -EINVAL;
		}
		if (k->kind == K_UINT && u > k->max) {
			snprintf(err, errlen, "config %s: [%s] %s = '%s': above the limit %u",
			         file, group, k->name, raw, k->max);
			return -ERANGE;
		}
		v->u = u;
		return 0;
	}
	case K_LIST:
		v->list = g_key_file_get_string_list(kf, group, k->name, NULL, &ge);
		if (!v->list || !v->list[0]) {
			snprintf(err, errlen, "config %s: [%s] %s = '%s': %s", file, group, k->name,
			         raw, ge ? ge->message : "empty list");
			g_clear_error(&ge);
			g_strfreev(v->list);
			v->list = NULL;
			return -EINVAL;
		}
		for (char **p = v->list; *p; p++) {
			g_strstrip(*p);
			if (!**p) {
				snprintf(err, errlen, "config %s: [%s] %s = '%s': empty element in list",
				         file, group, k->name, raw);
				g_strfreev(v->list);
				v->list = NULL;
				return -EINVAL;
			}
		}
		return 0;
	}
	return -EINVAL;
}

static void warn_unimplemented(GKeyFile *kf, const char *file, const char *group,
                               const struct key_def *k)
{
	if (k->kind == K_BOOL) {
		GError *ge = NULL;
		gboolean b = g_key_file_get_boolean(kf, group, k->name, &ge);
		if (!ge && !b)
			return;   /* disabled: no difference to nbd-server */
		g_clear_error(&ge);
	}
	srv_log(LOG_WARNING, "config %s: [%s] %s: nbd-server option not implemented by "
	        "nbd-pcie-server, ignored", file, group, k->name);
}

static void set_str(char **dst, char *src)
{
	g_free(*dst);
	*dst = src;
}

static int load_generic(struct srv_config *c, GKeyFile *kf, const char *file,
                        char **includedir, char *err, size_t errlen)
{
	g_auto(GStrv) keys = g_key_file_get_keys(kf, "generic", NULL, NULL);
	int rc = 0;

	for (char **kp = keys; kp && *kp; kp++) {
		const struct key_def *k = find_key(generic_keys, ARRAY_SIZE(generic_keys), *kp);
		struct val v;
		if (!k) {
			srv_log(LOG_WARNING, "config %s: [generic] %s: unknown key, ignored", file, *kp);
			continue;
		}
		if (!k->implemented) {
			warn_unimplemented(kf, file, "generic", k);
			continue;
		}
		rc = parse_value(kf, file, "generic", k, &v, err, errlen);
		if (rc)
			return rc;
		if (!strcmp(k->name, "user")) set_str(&c->user, v.str);
		else if (!strcmp(k->name, "group")) set_str(&c->group, v.str);
		else if (!strcmp(k->name, "listenaddr")) { set_str(&c->listenaddr, v.str); c->port_set = true; }
		else if (!strcmp(k->name, "port")) {
			uint64_t p;
			char *end;
			errno = 0;
			p = strtoull(v.str, &end, 10);
			if (errno || *end || end == v.str || p > 65535) {
				snprintf(err, errlen, "config %s: [generic] port = '%s': not a TCP port "
				         "(0 to 65535)", file, v.str);
				g_free(v.str);
				return -EINVAL;
			}
			set_str(&c->port, v.str);
			c->port_set = true;
		}
		else if (!strcmp(k->name, "includedir")) set_str(includedir, v.str);
		else if (!strcmp(k->name, "allowlist")) c->allowlist = v.b;
		else if (!strcmp(k->name, "unixsock")) set_str(&c->unixsock, v.str);
		else if (!strcmp(k->name, "duallisten")) c->duallisten = v.b;
		else if (!strcmp(k->name, "max_threads")) {
			if (v.u == 0) {
				snprintf(err, errlen, "config %s: [generic] max_threads = '0': must be "
				         "1 to %u", file, SRV_MAX_THREADS);
				return -EINVAL;
			}
			c->max_threads = (unsigned)v.u;
		}
		else if (!strcmp(k->name, "maxconnections")) c->maxconnections = (unsigned)v.u;
		else if (!strcmp(k->name, "pcie")) {
			for (char **p = v.list; *p; p++)
				srv_config_add_pcie(c, *p);
			g_strfreev(v.list);
		}
		else if (!strcmp(k->name, "pcie_channels")) c->pcie_channels = (unsigned)v.u;
		else if (!strcmp(k->name, "pcie_ring_entries")) {
			if (v.u && (v.u & (v.u - 1))) {
				snprintf(err, errlen, "config %s: [generic] pcie_ring_entries = '%llu': "
				         "not a power of two", file, (unsigned long long)v.u);
				return -EINVAL;
			}
			c->pcie_ring_entries = (unsigned)v.u;
		}
		else if (!strcmp(k->name, "pcie_data_per_channel")) {
			if (v.u > UINT32_MAX) {
				snprintf(err, errlen, "config %s: [generic] pcie_data_per_channel = "
				         "'%llu': above the limit %u", file, (unsigned long long)v.u,
				         UINT32_MAX);
				return -ERANGE;
			}
			c->pcie_data_per_channel = (uint32_t)v.u;
		}
	}
	return 0;
}

struct srv_export_cfg *srv_config_add_export(struct srv_config *c, const char *name,
                                             const char *path, const char *origin)
{
	struct srv_export_cfg *e;

	c->exports = g_renew(struct srv_export_cfg, c->exports, c->nexports + 1);
	e = &c->exports[c->nexports++];
	memset(e, 0, sizeof(*e));
	e->name = g_strdup(name);
	e->path = g_strdup(path);
	e->origin = g_strdup(origin);
	return e;
}

void srv_config_add_pcie(struct srv_config *c, const char *link)
{
	size_t n = c->pcie ? g_strv_length(c->pcie) : 0;

	c->pcie = g_renew(char *, c->pcie, n + 2);
	c->pcie[n] = g_strdup(link);
	c->pcie[n + 1] = NULL;
}

static int load_export(struct srv_config *c, GKeyFile *kf, const char *file,
                       const char *group, char *err, size_t errlen)
{
	g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
	struct srv_export_cfg tmp = { 0 };
	struct srv_export_cfg *e;
	bool has_sparse = false, has_cowdir = false;
	int rc = 0;

	for (size_t i = 0; i < c->nexports; i++) {
		if (!strcmp(c->exports[i].name, group)) {
			snprintf(err, errlen, "config %s: [%s]: export already defined in %s", file,
			         group, c->exports[i].origin);
			return -EEXIST;
		}
	}
	if (strlen(group) > 4096) {   /* NBDP_NAME_MAX: the protocol's limit on names */
		snprintf(err, errlen, "config %s: [%.40s...]: export name of %zu bytes is longer "
		         "than the protocol's limit of 4096", file, group, strlen(group));
		return -ENAMETOOLONG;
	}
	/* nbd-server's defaults: every boolean off unless configured. */
	for (char **kp = keys; kp && *kp; kp++) {
		const struct key_def *k = find_key(export_keys, ARRAY_SIZE(export_keys), *kp);
		struct val v;
		if (!k) {
			srv_log(LOG_WARNING, "config %s: [%s] %s: unknown key, ignored", file, group, *kp);
			continue;
		}
		if (!k->implemented) {
			warn_unimplemented(kf, file, group, k);
			continue;
		}
		rc = parse_value(kf, file, group, k, &v, err, errlen);
		if (rc)
			goto fail;
		if (!strcmp(k->name, "exportname")) set_str(&tmp.path, v.str);
		else if (!strcmp(k->name, "readonly")) tmp.readonly = v.b;
		else if (!strcmp(k->name, "filesize")) {
			if (v.u == 0) {
				snprintf(err, errlen, "config %s: [%s] filesize = '0': an export cannot "
				         "be empty", file, group);
				rc = -EINVAL;
				goto fail;
			}
			tmp.filesize = v.u;
		}
		else if (!strcmp(k->name, "flush")) tmp.flush = v.b;
		else if (!strcmp(k->name, "fua")) tmp.fua = v.b;
		else if (!strcmp(k->name, "trim")) tmp.trim = v.b;
		else if (!strcmp(k->name, "rotational")) tmp.rotational = v.b;
		else if (!strcmp(k->name, "sync")) tmp.sync = v.b;
		else if (!strcmp(k->name, "copyonwrite")) tmp.copyonwrite = v.b;
		else if (!strcmp(k->name, "sparse_cow")) { tmp.sparse_cow = v.b; has_sparse = true; }
		else if (!strcmp(k->name, "cowdir")) { set_str(&tmp.cowdir, v.str); has_cowdir = true; }
		else if (!strcmp(k->name, "maxconnections")) tmp.maxconnections = (unsigned)v.u;
		else if (!strcmp(k->name, "authfile")) set_str(&tmp.authfile, v.str);
	}
	if (!tmp.path) {
		snprintf(err, errlen, "config %s: [%s] exportname: missing (every export needs the "
		         "path of its file or block device)", file, group);
		rc = -EINVAL;
		goto fail;
	}
	if (tmp.readonly && tmp.copyonwrite) {
		snprintf(err, errlen, "config %s: [%s] copyonwrite = true conflicts with "
		         "readonly = true (copy-on-write exports are writable)", file, group);
		rc = -EINVAL;
		goto fail;
	}
	if (!tmp.copyonwrite && has_sparse && tmp.sparse_cow)
		srv_log(LOG_WARNING, "config %s: [%s] sparse_cow: has no effect without "
		        "copyonwrite = true", file, group);
	if (!tmp.copyonwrite && has_cowdir)
		srv_log(LOG_WARNING, "config %s: [%s] cowdir: has no effect without "
		        "copyonwrite = true", file, group);

	e = srv_config_add_export(c, group, tmp.path, file);
	e->filesize = tmp.filesize;
	e->readonly = tmp.readonly;
	e->flush = tmp.flush;
	e->fua = tmp.fua;
	e->trim = tmp.trim;
	e->rotational = tmp.rotational;
	e->sync = tmp.sync;
	e->copyonwrite = tmp.copyonwrite;
	e->sparse_cow = tmp.sparse_cow;
	e->cowdir = tmp.cowdir;
	e->maxconnections = tmp.maxconnections;
	e->authfile = tmp.authfile;
	g_free(tmp.path);
	return 0;
fail:
	g_free(tmp.path);
	g_free(tmp.cowdir);
	g_free(tmp.authfile);
	return rc;
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_file(struct srv_config *c, const char *file, bool main_file,
                     char *err, size_t errlen)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_auto(GStrv) groups = NULL;
	g_autofree char *includedir = NULL;
	GError *ge = NULL;
	int rc;

	if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &ge)) {
		rc = ge->domain == G_FILE_ERROR ? -ENOENT : -EINVAL;
		if (ge->domain == G_FILE_ERROR && ge->code == G_FILE_ERROR_ACCES)
			rc = -EACCES;
		snprintf(err, errlen, "config %s: %s", file, ge->message);
		g_error_free(ge);
		return rc;
	}
	groups = g_key_file_get_groups(kf, NULL);
	for (char **g = groups; *g; g++) {
		if (!strcmp(*g, "generic")) {
			if (!main_file) {
				snprintf(err, errlen, "config %s: [generic]: only allowed in the main "
				         "config file %s", file, c->origin);
				return -EINVAL;
			}
			rc = load_generic(c, kf, file, &includedir, err, errlen);
		} else {
			rc = load_export(c, kf, file, *g, err, errlen);
		}
		if (rc)
			return rc;
	}
	if (includedir) {
		g_autoptr(GDir) d = g_dir_open(includedir, 0, &ge);
		g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
		const char *n;
		if (!d) {
			snprintf(err, errlen, "config %s: [generic] includedir = '%s': %s", file,
			         includedir, ge->message);
			g_error_free(ge);
			return -ENOENT;
		}
		while ((n = g_dir_read_name(d)))
			if (g_str_has_suffix(n, ".conf"))
				g_ptr_array_add(names, g_build_filename(includedir, n, NULL));
		g_ptr_array_sort(names, cmp_names);
		for (guint i = 0; i < names->len; i++) {
			rc = load_file(c, g_ptr_array_index(names, i), false, err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int srv_config_load(struct srv_config *c, const char *file, char *err, size_t errlen)
{
	set_str(&c->origin, g_strdup(file));
	return load_file(c, file, true, err, errlen);
}

int srv_config_finish(struct srv_config *c, char *err, size_t errlen)
{
	const char *o = c->origin ? c->origin : "command line";

	if (c->nexports == 0) {
		snprintf(err, errlen, "config %s: no exports defined (add a group with "
		         "exportname = PATH)", o);
		return -EINVAL;
	}
	/* nbd-server: TCP unless a unix socket replaces it (duallisten keeps
	 * both). Ours in addition: a configuration that serves PCIe links listens
	 * on TCP only when port or listenaddr is given explicitly. */
	if (c->unixsock && !c->duallisten)
		c->tcp = false;
	else if (c->pcie && !c->port_set)
		c->tcp = false;
	else
		c->tcp = true;
	if (c->tcp && !c->port)
		c->port = g_strdup(SRV_DEFAULT_PORT);
	for (size_t i = 0; c->pcie && c->pcie[i]; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->pcie[i], c->pcie[j])) {
				snprintf(err, errlen, "config %s: pcie link '%s' given twice "
				         "(in [generic] pcie and/or --pcie)", o, c->pcie[i]);
				return -EINVAL;
			}
	if (c->duallisten && !c->unixsock)
		srv_log(LOG_WARNING, "config %s: [generic] duallisten: has no effect without "
		        "unixsock", o);
	if (!c->tcp && !c->unixsock && !c->pcie) {
		snprintf(err, errlen, "config %s: nothing to serve on (no port, unixsock or pcie)", o);
		return -EINVAL;
	}
	return 0;
}

void srv_config_free(struct srv_config *c)
{
	for (size_t i = 0; i < c->nexports; i++) {
		struct srv_export_cfg *e = &c->exports[i];
		g_free(e->name);
		g_free(e->path);
		g_free(e->origin);
		g_free(e->cowdir);
		g_free(e->authfile);
	}
	g_free(c->exports);
	g_free(c->origin);
	g_free(c->listenaddr);
	g_free(c->port);
	g_free(c->unixsock);
	g_free(c->user);
	g_free(c->group);
	g_strfreev(c->pcie);
	memset(c, 0, sizeof(*c));
}
