/* Modes that need the transport and proto libraries (merged later). */
#include <syslog.h>

#include "internal.h"

int npc_cmd_list(const struct npc_opts *o)
{
	npc_log(LOG_ERR, "-l: not available in this build yet");
	return NPC_EXIT_FAIL;
}

int npc_cmd_local(const struct npc_opts *o)
{
	npc_log(LOG_ERR, "-unix: not available in this build yet");
	return NPC_EXIT_FAIL;
}

int npc_cmd_attach(const struct npc_opts *o)
{
	npc_log(LOG_ERR, "attach: not available in this build yet");
	return NPC_EXIT_FAIL;
}
