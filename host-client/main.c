/* nbd-pcie-client: parses the command line and runs the chosen mode. */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "internal.h"

#ifndef NBDPCIE_VERSION
#define NBDPCIE_VERSION "0.1.0"
#endif

static int run(const struct npc_opts *o);

int main(int argc, char **argv)
{
	struct npc_opts o;
	char err[512];
	int r;

	if (npc_cli_parse(argc, argv, &o, err, sizeof(err))) {
		npc_log(LOG_ERR, "%s", err);
		return NPC_EXIT_FAIL;
	}
	if (o.mode == NPC_MODE_NBDTAB) {
		if ((r = npc_nbdtab_apply(o.nbdtab, &o, err, sizeof(err)))) {
			npc_log(LOG_ERR, "%s", err);
			npc_opts_release(&o);
			return NPC_EXIT_FAIL;
		}
		o.mode = NPC_MODE_ATTACH;
	}
	if (o.systemd_mark && argv[0][0])
		argv[0][0] = '@';   /* systemd leaves such processes alone at shutdown */
	r = run(&o);
	npc_opts_release(&o);
	return r;
}

static int run(const struct npc_opts *o)
{
	switch (o->mode) {
	case NPC_MODE_HELP:
		npc_cli_usage(stdout);
		return NPC_EXIT_OK;
	case NPC_MODE_VERSION:
		printf("nbd-pcie-client %s (nbd-client 3.24 command line)\n", NBDPCIE_VERSION);
		return NPC_EXIT_OK;
	case NPC_MODE_DISCONNECT:
		return npc_cmd_disconnect(o);
	case NPC_MODE_CHECK:
		return npc_cmd_check(o);
	case NPC_MODE_LIST:
		return npc_cmd_list(o);
	case NPC_MODE_LOCAL:
		return npc_cmd_local(o);
	case NPC_MODE_ATTACH:
	case NPC_MODE_NBDTAB:
		return npc_cmd_attach(o);
	}
	return NPC_EXIT_FAIL;
}
