/* nbdpcie-ivshmem-ring: rings a QEMU guest's ivshmem-doorbell vectors the
 * way the EP does (transport/src/irq-ivshmem.c, link option
 * irq=ivshmem:SOCKET), as a peer of its own. vm-hostwin uses it to prove
 * the chain EP peer -> ivshmem server -> QEMU -> MSI-X -> nbd-pcie-host with
 * the transport's own client code, independently of when the EP rings.
 *
 *   nbdpcie-ivshmem-ring SOCKET VECTOR...
 *
 * Rings each VECTOR once (of the lowest other peer, as the EP does), 50 ms
 * apart, and prints "RANG V" for each. Exit 1 with a message on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Apart enough that the guest counts each as one interrupt. */
#define GAP_NS 50000000L

int main(int argc, char **argv)
{
	struct timespec gap = { 0, GAP_NS };
	struct npt_ivsh *v;
	char err[256];
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET VECTOR...\n", argv[0]);
		return 2;
	}
	r = npt_ivsh_open(argv[1], -1, &v, err, sizeof(err));
	if (r) {
		fprintf(stderr, "ivshmem-ring: %s\n", err);
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		char *end;
		unsigned long vec = strtoul(argv[i], &end, 0);

		if (*end || vec > 1023) {
			fprintf(stderr, "ivshmem-ring: vector \"%s\" is not 0..1023\n", argv[i]);
			npt_ivsh_close(v);
			return 2;
		}
		r = npt_ivsh_ring(v, (unsigned)vec);
		if (r) {
			fprintf(stderr, "ivshmem-ring: ring vector %lu: %s\n", vec, strerror(-r));
			npt_ivsh_close(v);
			return 1;
		}
		printf("RANG %lu\n", vec);
		fflush(stdout);
		nanosleep(&gap, NULL);
	}
	npt_ivsh_close(v);
	return 0;
}
