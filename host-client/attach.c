/* Attach a kernel nbd device (placeholder until the attach path lands). */
#include <syslog.h>

#include "internal.h"

int npc_cmd_attach(const struct npc_opts *o)
{
	npc_log(LOG_ERR, "attach: not available in this build yet");
	return NPC_EXIT_FAIL;
}
