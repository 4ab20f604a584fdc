/* The server object: exports opened at start, the workers, connection
 * accounting, and the callbacks the proto handshake machine calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"

static struct srv_export *find_export(struct srv_server *s, const char *name)
{
	if (!*name)
		return s->nexports ? &s->exports[0] : NULL;   /* "" = the first export */
	for (size_t i = 0; i < s->nexports; i++)
		if (!strcmp(s->exports[i].cfg->name, name))
			return &s->exports[i];
	return NULL;
}

static int hs_lookup(void *opaque, const char *name, struct nbdp_export *out)
{
	struct srv_conn *c = opaque;
	struct srv_export *e = find_export(c->srv, name);
	unsigned max;

	if (!e) {
		srv_log(LOG_NOTICE, "%s: unknown export '%s'", c->desc, name);
		return -ENOENT;
	}
	if (c->has_peer && !srv_export_allows(e, (const struct sockaddr *)&c->peer)) {
		srv_log(LOG_NOTICE, "%s: export %s: address not in authfile %s", c->desc,
		        e->cfg->name, e->cfg->authfile);
		return -EACCES;
	}
	max = e->cfg->maxconnections;
	if (max && atomic_load(&e->nconn) >= max) {
		srv_log(LOG_NOTICE, "%s: export %s: maxconnections %u reached", c->desc,
		        e->cfg->name, max);
		return -EACCES;
	}
	if (atomic_load(&c->srv->stopping))
		return -ESHUTDOWN;
	memset(out, 0, sizeof(*out));
	out->size = e->size;
	out->tflags = e->tflags;
	out->min_block = e->min_block;
	out->pref_block = e->pref_block;
	out->max_block = e->max_block;
	snprintf(out->name, sizeof(out->name), "%s", e->cfg->name);
	out->description = NULL;
	out->handle = e;
	return 0;
}

static int hs_list(void *opaque, void (*emit)(void *ctx, const char *name, const char *desc),
                   void *ctx)
{
	struct srv_conn *c = opaque;
	struct srv_server *s = c->srv;

	if (!s->cfg->allowlist) {
		srv_log(LOG_INFO, "%s: export list refused (allowlist = false)", c->desc);
		return -EPERM;
	}
	for (size_t i = 0; i < s->nexports; i++)
		emit(ctx, s->exports[i].cfg->name, NULL);
	return 0;
}

const struct nbdp_server_ops srv_handshake_ops = {
	.lookup = hs_lookup,
	.list = hs_list,
};

int srv_server_open_exports(struct srv_server *s, struct srv_config *cfg, char *err, size_t errlen)
{
	s->cfg = cfg;
	s->exports = calloc(cfg->nexports, sizeof(*s->exports));
	if (!s->exports)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nexports; i++) {
		int rc = srv_export_open(&s->exports[i], &cfg->exports[i], err, errlen);
		if (rc)
			return rc;
		s->nexports++;
	}
	return 0;
}

int srv_server_start_workers(struct srv_server *s, char *err, size_t errlen)
{
	s->workers = calloc(s->cfg->max_threads, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < s->cfg->max_threads; i++) {
		int rc;
		s->workers[i] = srv_worker_new(s, i, err, errlen);
		if (!s->workers[i])
			return -ENOMEM;
		s->nworkers++;
		rc = srv_worker_start(s->workers[i]);
		if (rc) {
			snprintf(err, errlen, "worker %u: pthread_create: %s", i, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

void srv_server_add_conn(struct srv_server *s, struct srv_conn *c, int hint)
{
	unsigned idx;

	atomic_fetch_add(&s->nconns, 1);
	c->hs = nbdp_server_new(&srv_handshake_ops, c);
	if (hint >= 0) {
		idx = (unsigned)hint % s->nworkers;
	} else {
		/* the least loaded worker, round-robin among equals */
		idx = s->rr++ % s->nworkers;
		for (unsigned i = 0; i < s->nworkers; i++)
			if (srv_worker_nconns(s->workers[i]) < srv_worker_nconns(s->workers[idx]))
				idx = i;
	}
	if (!c->hs) {
		srv_log(LOG_ERR, "%s: out of memory for the handshake", c->desc);
		c->state = SRV_C_CLOSING;
		c->dead = true;
	}
	srv_worker_add(s->workers[idx], c);
}

void srv_server_stop(struct srv_server *s)
{
	atomic_store(&s->stopping, true);
	for (unsigned i = 0; i < s->nworkers; i++)
		srv_worker_stop(s->workers[i]);
	for (size_t i = 0; i < s->nexports; i++) {
		struct srv_export *e = &s->exports[i];
		if (!e->cfg->readonly && !e->cfg->copyonwrite && fsync(e->fd) < 0)
			srv_log(LOG_ERR, "export %s: final flush of %s: %s", e->cfg->name,
			        e->cfg->path, strerror(errno));
	}
}

void srv_server_free(struct srv_server *s)
{
	for (unsigned i = 0; i < s->nworkers; i++)
		srv_worker_free(s->workers[i]);
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	for (size_t i = 0; i < s->nexports; i++)
		srv_export_close(&s->exports[i]);
	free(s->exports);
	s->exports = NULL;
	s->nexports = 0;
}
