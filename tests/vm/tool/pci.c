/* nbdpcie-vmtool: PCI device lookup and BAR access through libpciaccess. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pciaccess.h>

#include "internal.h"

/* The host's control mailbox is text at the start of the control device's
 * BAR2; 4 KiB holds every key a scenario sends, and one page is what the
 * host side (lib.sh, vm_ctl_send) rewrites. */
#define CTL_MAILBOX_SIZE 4096

/* ctl-wait polls at this interval: short enough not to add to a test's
 * wall time, long enough not to steal the TCG guest's CPU. */
#define CTL_POLL_NS (50 * 1000 * 1000L)

static int parse_bdf(const char *s, unsigned *dom, unsigned *bus, unsigned *dev,
		     unsigned *fn)
{
	char tail;

	if (sscanf(s, "%x:%x:%x.%x%c", dom, bus, dev, fn, &tail) != 4) {
		fprintf(stderr, "vmtool: PCI address '%s' is not DOMAIN:BUS:DEV.FN\n", s);
		return -EINVAL;
	}
	return 0;
}

/* Maps one BAR of the device at BDF; *size gets the BAR's size. */
static int map_bar(const char *bdf, unsigned bar, int writable,
		   struct pci_device **devp, volatile uint8_t **mem, uint64_t *size)
{
	unsigned dom, bus, dev, fn;
	struct pci_device *d;
	void *p;
	int err;

	if (bar >= 6) {
		fprintf(stderr, "vmtool: BAR %u out of range (0..5)\n", bar);
		return -EINVAL;
	}
	err = parse_bdf(bdf, &dom, &bus, &dev, &fn);
	if (err)
		return err;
	err = pci_system_init();
	if (err) {
		fprintf(stderr, "vmtool: pci_system_init: %s\n", strerror(err));
		return -err;
	}
	d = pci_device_find_by_slot(dom, bus, dev, fn);
	if (!d) {
		fprintf(stderr, "vmtool: no PCI device at %s\n", bdf);
		err = -ENODEV;
		goto out_cleanup;
	}
	err = pci_device_probe(d);
	if (err) {
		fprintf(stderr, "vmtool: probe %s: %s\n", bdf, strerror(err));
		err = -err;
		goto out_cleanup;
	}
	if (!d->regions[bar].size) {
		fprintf(stderr, "vmtool: %s has no BAR %u\n", bdf, bar);
		err = -ENODEV;
		goto out_cleanup;
	}
	err = pci_device_map_range(d, d->regions[bar].base_addr, d->regions[bar].size,
				   writable ? PCI_DEV_MAP_FLAG_WRITABLE : 0, &p);
	if (err) {
		fprintf(stderr, "vmtool: map %s BAR %u (%" PRIu64 " bytes): %s\n", bdf, bar,
			(uint64_t)d->regions[bar].size, strerror(err));
		err = -err;
		goto out_cleanup;
	}
	*devp = d;
	*mem = p;
	*size = d->regions[bar].size;
	return 0;

out_cleanup:
	pci_system_cleanup();
	return err;
}

static void unmap_bar(struct pci_device *d, volatile uint8_t *mem, uint64_t size)
{
	pci_device_unmap_range(d, (void *)mem, size);
	pci_system_cleanup();
}

static int parse_bar_args(int argc, char **argv, int want, unsigned *bar, uint64_t *off)
{
	uint64_t v;

	if (argc != want) {
		fprintf(stderr, "vmtool: expected %d arguments, got %d\n", want, argc);
		return -EINVAL;
	}
	if (vmtool_parse_u64("BAR", argv[1], &v) || v > 5) {
		fprintf(stderr, "vmtool: BAR '%s' out of range (0..5)\n", argv[1]);
		return -EINVAL;
	}
	*bar = (unsigned)v;
	return vmtool_parse_u64("offset", argv[2], off);
}

int vmtool_cmd_pci_find(int argc, char **argv)
{
	struct pci_id_match match = {
		.subvendor_id = PCI_MATCH_ANY,
		.subdevice_id = PCI_MATCH_ANY,
	};
	struct pci_device_iterator *it;
	struct pci_device *d;
	unsigned vid, did;
	char tail;
	int found = 0, err;

	if (argc != 1 || sscanf(argv[0], "%x:%x%c", &vid, &did, &tail) != 2) {
		fprintf(stderr, "vmtool: pci-find wants VENDOR:DEVICE in hex, e.g. 1af4:1110\n");
		return 2;
	}
	match.vendor_id = vid;
	match.device_id = did;
	err = pci_system_init();
	if (err) {
		fprintf(stderr, "vmtool: pci_system_init: %s\n", strerror(err));
		return 1;
	}
	it = pci_id_match_iterator_create(&match);
	while (it && (d = pci_device_next(it))) {
		if (pci_device_probe(d) == 0)
			printf("%04x:%02x:%02x.%x bar0=%" PRIu64 " bar2=%" PRIu64 "\n",
			       d->domain, d->bus, d->dev, d->func,
			       (uint64_t)d->regions[0].size, (uint64_t)d->regions[2].size);
		else
			printf("%04x:%02x:%02x.%x\n", d->domain, d->bus, d->dev, d->func);
		found++;
	}
	pci_iterator_destroy(it);
	pci_system_cleanup();
	if (!found) {
		fprintf(stderr, "vmtool: no PCI device %04x:%04x\n", vid, did);
		return 1;
	}
	return 0;
}

int vmtool_cmd_bar_write(int argc, char **argv)
{
	struct pci_device *d;
	volatile uint8_t *mem;
	uint64_t size, off;
	unsigned bar;
	size_t len, i;

	if (parse_bar_args(argc, argv, 4, &bar, &off))
		return 2;
	if (map_bar(argv[0], bar, 1, &d, &mem, &size))
		return 1;
	len = strlen(argv[3]) + 1;
	if (off > size || len > size - off) {
		fprintf(stderr, "vmtool: bar-write: offset %" PRIu64 " + length %zu beyond BAR size %" PRIu64 "\n",
			off, len, size);
		unmap_bar(d, mem, size);
		return 1;
	}
	for (i = 0; i < len; i++)
		mem[off + i] = (uint8_t)argv[3][i];
	unmap_bar(d, mem, size);
	return 0;
}

int vmtool_cmd_bar_read(int argc, char **argv)
{
	struct pci_device *d;
	volatile uint8_t *mem;
	uint64_t size, off, len, i;
	unsigned bar;

	if (parse_bar_args(argc, argv, 4, &bar, &off) ||
	    vmtool_parse_u64("length", argv[3], &len))
		return 2;
	if (map_bar(argv[0], bar, 0, &d, &mem, &size))
		return 1;
	if (off > size || len > size - off) {
		fprintf(stderr, "vmtool: bar-read: offset %" PRIu64 " + length %" PRIu64 " beyond BAR size %" PRIu64 "\n",
			off, len, size);
		unmap_bar(d, mem, size);
		return 1;
	}
	for (i = 0; i < len && mem[off + i]; i++)
		putchar(mem[off + i]);
	putchar('\n');
	unmap_bar(d, mem, size);
	return 0;
}

/* Looks for a whole line "KEY" or "KEY=VALUE" (terminated by '\n', so a
 * line the host is still writing does not count); prints VALUE. */
static int find_key(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *line = text, *nl;

	while ((nl = strchr(line, '\n'))) {
		if (!strncmp(line, key, klen) && (line[klen] == '\n' || line[klen] == '=')) {
			if (line[klen] == '=')
				printf("%.*s\n", (int)(nl - line - klen - 1), line + klen + 1);
			return 1;
		}
		line = nl + 1;
	}
	return 0;
}

int vmtool_cmd_ctl_wait(int argc, char **argv)
{
	static char text[CTL_MAILBOX_SIZE + 1];
	const struct timespec tick = { 0, CTL_POLL_NS };
	struct timespec start, now;
	struct pci_device *d;
	volatile uint8_t *mem;
	uint64_t size, secs;
	size_t i;
	int rc = 1;

	if (argc != 3 || vmtool_parse_u64("seconds", argv[2], &secs)) {
		fprintf(stderr, "vmtool: ctl-wait wants BDF KEY SECONDS\n");
		return 2;
	}
	if (map_bar(argv[0], 2, 0, &d, &mem, &size))
		return 1;
	if (size < CTL_MAILBOX_SIZE) {
		fprintf(stderr, "vmtool: ctl-wait: BAR2 size %" PRIu64 " below mailbox size %d\n",
			size, CTL_MAILBOX_SIZE);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		for (i = 0; i < CTL_MAILBOX_SIZE && (text[i] = (char)mem[i]); i++)
			;
		text[i] = 0;
		if (find_key(text, argv[1])) {
			rc = 0;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((uint64_t)(now.tv_sec - start.tv_sec) >= secs) {
			fprintf(stderr, "vmtool: ctl-wait: no '%s' from the host after %" PRIu64 " s\n",
				argv[1], secs);
			break;
		}
		nanosleep(&tick, NULL);
	}
out:
	unmap_bar(d, mem, size);
	return rc;
}
