/* nbdpcie-vmtool: generic netlink family lookup (libnl-genl, as the client). */
#include <stdio.h>

#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "internal.h"

int vmtool_cmd_genl_family(int argc, char **argv)
{
	struct nl_sock *sk;
	int id, err;

	if (argc != 1) {
		fprintf(stderr, "vmtool: genl-family wants one NAME\n");
		return 2;
	}
	sk = nl_socket_alloc();
	if (!sk) {
		fprintf(stderr, "vmtool: genl-family: out of memory\n");
		return 1;
	}
	err = genl_connect(sk);
	if (err < 0) {
		fprintf(stderr, "vmtool: genl-family: connect: %s\n", nl_geterror(err));
		nl_socket_free(sk);
		return 1;
	}
	id = genl_ctrl_resolve(sk, argv[0]);
	nl_socket_free(sk);
	if (id < 0) {
		fprintf(stderr, "vmtool: genl-family: '%s' not registered: %s\n", argv[0],
			nl_geterror(id));
		return 1;
	}
	printf("%s id=%d\n", argv[0], id);
	return 0;
}
