/* -d and -c: disconnect and check a kernel nbd device through netlink. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/nbd-netlink.h>

#include "internal.h"

int npc_cmd_disconnect(const struct npc_opts *o)
{
	char err[256];
	struct npc_nl *n;
	int r;

	if ((r = npc_nl_open(&n, err, sizeof(err)))) {
		npc_log(LOG_ERR, "-d %s: %s", o->device, err);
		return NPC_EXIT_FAIL;
	}
	r = npc_nl_disconnect(n, o->dev_index);
	npc_nl_close(n);
	if (r) {
		npc_log(LOG_ERR, "-d %s: kernel refused NBD_CMD_DISCONNECT: %s", o->device,
			npc_nl_strerror(NBD_CMD_DISCONNECT, r));
		return NPC_EXIT_FAIL;
	}
	return NPC_EXIT_OK;
}

/* /sys/block/nbdX/pid: the PID of the process that connected the device
 * (the relay); absent when the device is not connected. */
static int read_pid(int index, long *pid)
{
	char path[64];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", index);
	if (!(f = fopen(path, "re")))
		return -errno;
	r = fscanf(f, "%ld", pid) == 1 ? 0 : -EIO;
	fclose(f);
	return r;
}

int npc_cmd_check(const struct npc_opts *o)
{
	char err[256], path[64];
	struct npc_nl *n;
	bool connected = false;
	long pid;
	int r;

	snprintf(path, sizeof(path), "/sys/block/nbd%d", o->dev_index);
	if (access(path, F_OK) != 0) {
		if ((r = npc_nl_open(&n, err, sizeof(err)))) {
			npc_log(LOG_ERR, "-c %s: %s", o->device, err);
			return NPC_EXIT_CHECK_NOT_CONNECTED;
		}
		npc_nl_close(n);
		npc_log(LOG_ERR, "-c %s: no such device (%s absent; nbds_max too low?)", o->device,
			path);
		return NPC_EXIT_CHECK_NOT_CONNECTED;
	}
	if ((r = npc_nl_open(&n, err, sizeof(err)))) {
		npc_log(LOG_ERR, "-c %s: %s", o->device, err);
		return NPC_EXIT_CHECK_ERROR;
	}
	r = npc_nl_status(n, o->dev_index, &connected);
	npc_nl_close(n);
	if (r == -ENOENT)
		return NPC_EXIT_CHECK_NOT_CONNECTED;
	if (r) {
		npc_log(LOG_ERR, "-c %s: NBD_CMD_STATUS failed: %s", o->device,
			npc_nl_strerror(NBD_CMD_STATUS, r));
		return NPC_EXIT_CHECK_ERROR;
	}
	if (!connected)
		return NPC_EXIT_CHECK_NOT_CONNECTED;
	if (read_pid(o->dev_index, &pid) == 0)
		printf("%ld\n", pid);
	return NPC_EXIT_OK;
}
