/* -l: list the exports of the EP, one per line ("name" or "name: description"),
 * like nbd-client -l. */
#include <errno.h>
#include <stdio.h>
#include <syslog.h>

#include <nbdproto/client.h>

#include "internal.h"

static void print_export(void *ctx, const char *name, const char *desc)
{
	unsigned *count = ctx;

	if (desc && *desc)
		printf("%s: %s\n", name, desc);
	else
		printf("%s\n", name);
	(*count)++;
}

int npc_cmd_list(const struct npc_opts *o)
{
	struct npc_link *k;
	unsigned count = 0;
	char err[512];
	struct nbdp_client_opts co = { .goal = NBDP_GOAL_LIST, .export_name = "",
				       .on_list = print_export, .list_ctx = &count };
	int r;

	/* The process holding the link (a device, a -unix server) answers for
	 * it: opening the link here would take it over. */
	r = npc_ctl_list(o->link, print_export, &count, err, sizeof(err));
	if (r != -ECONNREFUSED && r != -ENOENT) {
		fflush(stdout);
		if (r) {
			npc_log(LOG_ERR, "-l -pcie %s: %s", o->link, err);
			return NPC_EXIT_FAIL;
		}
		return NPC_EXIT_OK;
	}
	if ((r = npc_link_open(o->link, &k, err, sizeof(err)))) {
		npc_log(LOG_ERR, "-l: %s", err);
		return NPC_EXIT_FAIL;
	}
	r = npc_remote_handshake(k, &co, NPC_HANDSHAKE_TIMEOUT_MS, NULL, NULL, err, sizeof(err));
	npc_link_close(k);
	fflush(stdout);
	if (r) {
		npc_log(LOG_ERR, "-l -pcie %s: %s%s", o->link, err,
			r == -EACCES ? " (the EP's config needs allowlist = true)" : "");
		return NPC_EXIT_FAIL;
	}
	return NPC_EXIT_OK;
}
