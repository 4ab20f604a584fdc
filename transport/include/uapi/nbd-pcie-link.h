/* SPDX-License-Identifier: MIT */
/*
 * nbd-pcie link layout: the structures both sides place in the endpoint's
 * BAR and in the host DMA window. docs/transport.md is the specification;
 * this header is its machine-readable half and is shared by userspace
 * (transport/) and the kernel modules (kmod/).
 *
 * Every multi-byte field is little-endian except the embedded NBD request
 * header and simple reply, which stay in NBD wire format (big-endian).
 * Only <linux/types.h> types are used so that the header builds in the
 * kernel and in userspace alike.
 */
#ifndef UAPI_NBD_PCIE_LINK_H
#define UAPI_NBD_PCIE_LINK_H

#include <linux/types.h>

#define NPL_MAGIC          0x4c50424eu  /* "NBPL" read as little-endian bytes */
#define NPL_VERSION        1            /* bumped on any incompatible layout change */

/* The BAR header occupies the first page so that channel 0 starts page
 * aligned and the header can grow without moving the channels. */
#define NPL_HEADER_AREA    4096
/* Channel regions, host-polled areas and payload areas are aligned to this so
 * that every mmap/DMA range starts on a page of either side. */
#define NPL_PAGE           4096
#define NPL_CACHE_LINE     64

/* Feature bits (npl_bar_header.features = offered by the EP,
 * host_features = the subset the host uses). Unknown bits MUST be ignored. */
#define NPL_F_HOST_WINDOW  (1u << 0)    /* EP can reach a host window (DMA) */
/* Doorbells (docs/transport.md "Notifications"). In features: the EP rings
 * the host for a channel whose host_sleeping word is set. In host_features
 * (only if offered): the host rings the EP for a channel whose ep_sleeping
 * word is set. A side sets its own sleeping word only if the peer declared
 * the bit and it has something to sleep on. */
#define NPL_F_DOORBELL     (1u << 1)

/* npl_bar_header.ep_state */
#define NPL_EP_DOWN        0            /* no EP, or the EP closed the link */
#define NPL_EP_INIT        1            /* EP is (re)writing the layout: do not use */
#define NPL_EP_READY       2            /* layout valid, EP serving */

/* npl_bar_header.host_state */
#define NPL_HOST_DETACHED  0
#define NPL_HOST_ATTACHED  1

/* npl_chan_ep_ctl.host_state (channel, written by the host) */
#define NPL_CH_CLOSED      0
#define NPL_CH_OPEN        1

/* npl_chan_ep_ctl.host_sleeping and npl_chan_host_ctl.ep_sleeping: AWAKE,
 * or the sleeper's sleep number (non-zero, different from its previous
 * sleep's). Readers treat every non-zero value as sleeping. */
#define NPL_AWAKE          0

/* npl_chan_host_ctl.ep_state (channel, written by the EP) */
#define NPL_CHE_CLOSED     0
#define NPL_CHE_ACCEPTED   1
#define NPL_CHE_ERROR      2            /* EP rejected the channel; see error */

/* npl_chan_host_ctl.error and npl_bar_header.ep_win_status */
#define NPL_ERR_NONE       0
#define NPL_ERR_STREAM     1            /* stream index out of range */
#define NPL_ERR_TAG        2            /* tag >= ring_entries */
#define NPL_ERR_TAG_REUSED 3            /* tag already in flight */
#define NPL_ERR_LEN        4            /* length > max_xfer or != NBD length */
#define NPL_ERR_RANGE      5            /* offset + length beyond the payload area */
#define NPL_ERR_OVERLAP    6            /* payload overlaps an in-flight payload */
#define NPL_ERR_MAGIC      7            /* NBD request magic wrong */
#define NPL_ERR_DIR        8            /* direction flags do not match the NBD command */
#define NPL_ERR_WINDOW     9            /* host window parameters invalid */
#define NPL_ERR_WINMAP     10           /* EP could not map the host window */

/* npl_sqe.flags */
#define NPL_SQE_TO_EP      (1u << 0)    /* payload flows host -> EP (NBD_CMD_WRITE) */
#define NPL_SQE_TO_HOST    (1u << 1)    /* payload flows EP -> host (NBD_CMD_READ) */

/* The BAR header. Cache line 0: EP-written, constant while READY.
 * Line 1: EP-written, changing. Line 2: host-written. */
struct npl_bar_header {
	/* line 0 */
	__le32 magic;            /* NPL_MAGIC */
	__le16 version;          /* NPL_VERSION */
	__le16 header_size;      /* sizeof(struct npl_bar_header) */
	__le32 features;         /* NPL_F_* the EP offers */
	__le32 nchannels;        /* 1..64 */
	__le32 ring_entries;     /* power of two, 2..1024 */
	__le32 stream_size;      /* bytes of each handshake byte ring, power of two */
	__le32 max_xfer;         /* largest payload of one entry */
	__le32 data_per_chan;    /* bytes of each channel's payload area */
	__le64 bar_size;         /* bytes of the BAR the layout covers */
	__le64 chan_base;        /* BAR offset of channel 0 */
	__le32 chan_stride;      /* bytes between channels in the BAR */
	__le32 hp_offset;        /* offset of the BAR copy of the host-polled area in a channel */
	__le32 hp_size;          /* bytes of one host-polled area (incl. payload area) */
	__le32 payload_offset;   /* offset of the payload area in a host-polled area */
	/* line 1 */
	__le32 ep_state;         /* NPL_EP_* */
	__le32 ep_generation;    /* incremented on every EP (re)start */
	__le64 ep_heartbeat;     /* incremented by the EP at least every 100 ms */
	__le32 ep_host_gen;      /* host_generation the EP has attached (acknowledged) */
	__le32 ep_win_status;    /* NPL_ERR_* why the host window was refused, 0 if accepted */
	__le32 reserved1[10];
	/* line 2 */
	__le32 host_state;       /* NPL_HOST_* */
	__le32 host_generation;  /* incremented on every host attach */
	__le64 host_heartbeat;   /* incremented by the host at least every 100 ms */
	__le32 host_features;    /* NPL_F_* in use, subset of features */
	__le32 win_data_per_chan; /* bytes of each payload area in the window, 0 = data_per_chan */
	__le64 win_bus_addr;     /* bus address of the host window (page aligned) */
	__le64 win_size;         /* bytes of the host window */
	__le64 win_chan_stride;  /* bytes between channels' host-polled areas in the window */
	__le32 reserved3[4];
	/* line 3 */
	__le32 reserved4[16];
};

/* Per channel, in the BAR at chan_base + i * chan_stride: written by the host,
 * polled by the EP. Followed by the submission ring (ring_entries x npl_sqe)
 * and the host->EP handshake byte ring (stream_size bytes). */
struct npl_chan_ep_ctl {
	__le32 host_state;       /* NPL_CH_* */
	__le32 session;          /* changes on every open of this channel */
	__le32 h2e_prod;         /* host->EP stream: bytes written, free running */
	__le32 e2h_cons;         /* EP->host stream: bytes consumed, free running */
	__le32 host_sleeping;    /* host is (about to be) asleep on this channel: any
	                            non-zero value (its sleep number) = ring it */
	__le32 reserved[11];
};

/* Per channel, at the start of its host-polled area (host window, or the BAR
 * copy at hp_offset in BAR-only mode): written by the EP, polled by the host.
 * Followed by the completion ring (ring_entries x npl_cqe), the EP->host
 * handshake byte ring (stream_size bytes) and, at payload_offset, the
 * payload area (data_per_chan bytes). */
struct npl_chan_host_ctl {
	__le32 ep_state;         /* NPL_CHE_* */
	__le32 session;          /* the host session the EP accepted */
	__le32 e2h_prod;         /* EP->host stream: bytes written, free running */
	__le32 h2e_cons;         /* host->EP stream: bytes consumed, free running */
	__le32 error;            /* NPL_ERR_* when ep_state == NPL_CHE_ERROR */
	__le32 ep_sleeping;      /* EP is (about to be) asleep on this channel: any
	                            non-zero value (its sleep number) = ring it */
	__le32 reserved[10];
};

/* Submission entry: written by the host into the BAR, seq last. */
struct npl_sqe {
	__u8   nbd_req[28];      /* NBD request header, NBD wire format */
	__le32 tag;              /* < ring_entries, unique among in-flight entries */
	__le32 len;              /* payload bytes, 0 = none */
	__le32 flags;            /* NPL_SQE_* */
	__le64 offset;           /* payload offset in the channel's payload area */
	__le32 reserved[3];
	__le32 seq;              /* ring position + 1 (mod 2^32); published last */
};

/* Completion entry: written by the EP into the host-polled area, seq last. */
struct npl_cqe {
	__u8   nbd_reply[16];    /* NBD simple reply, NBD wire format */
	__le32 tag;              /* tag of the request */
	__le32 len;              /* payload bytes placed in the host buffer */
	__le32 reserved;
	__le32 seq;              /* ring position + 1 (mod 2^32); published last */
};

#define NPL_CHAN_SQ_OFFSET   64 /* sizeof(struct npl_chan_ep_ctl) */
#define NPL_CHAN_CQ_OFFSET   64 /* sizeof(struct npl_chan_host_ctl) */

/* ---- kernel module interface (kmod/) ---- */
/*
 * Character devices of the two kernel modules (docs/kmod.md):
 *   host: /dev/nbd-pcie-host<N>  (kmod/nbd-pcie-host, one per bound PCI function)
 *   EP:   /dev/nbd-pcie-ep<N>    (kmod/pci-epf-nbd, one per endpoint function)
 * mmap() offsets select a region: offset = NPK_MMAP_OFFSET(region) + byte
 * offset inside it (page aligned). Regions are listed by the INFO ioctls.
 * All ioctl structs are native-endian (they never cross the link) and sized
 * identically on 32- and 64-bit ABIs (explicit padding, __u64 pointers).
 */
#include <linux/ioctl.h>

/* 2^36 bytes (64 GiB) per region: larger than any BAR or window we map and
 * still leaves vm_pgoff room on 32-bit kernels for the 8 regions below. */
#define NPK_MMAP_REGION_SHIFT  36
#define NPK_MMAP_OFFSET(region) ((__u64)(region) << NPK_MMAP_REGION_SHIFT)

/* Host regions: 0..5 = PCI BARs (memory BARs only), 6 = host DMA window. */
#define NPK_HOST_REGION_BAR(n) (n)
#define NPK_HOST_REGION_WIN    6
#define NPK_HOST_NREGIONS      7
/* EP regions: the function's BAR memory and the local DMA staging buffer. */
#define NPK_EP_REGION_BAR      0
#define NPK_EP_REGION_STAGE    1
#define NPK_EP_NREGIONS        2

/* ioctl type byte; 0xB9 is unassigned in the kernel's ioctl-number list. */
#define NPK_IOC_MAGIC          0xB9

/* Most MSI-X vectors the host module requests and reports: more than the
 * transport's 64 channels need, and small enough for a fixed array. */
#define NPK_HOST_MAX_VECTORS   32

struct npk_region {
	__u64 size;              /* bytes mappable, 0 = region absent */
	__u64 bus_addr;          /* host window: bus address the EP must target; else 0 */
};

struct npk_host_info {
	__u32 api_version;       /* NPK_API_VERSION */
	__u16 vendor, device;    /* PCI IDs of the bound function */
	__u32 shm_bar;           /* BAR holding the link layout (largest memory BAR) */
	__u32 nvectors;          /* MSI-X/MSI vectors wired to read()/poll() */
	struct npk_region region[NPK_HOST_NREGIONS];
	__u64 reserved[4];
};

/* Interrupts delivered so far, per vector (NPK_HOST_IOC_IRQ_COUNTS). */
struct npk_host_irq_counts {
	__u64 count[NPK_HOST_MAX_VECTORS];
};

#define NPK_API_VERSION        1

#define NPK_HOST_IOC_INFO       _IOR(NPK_IOC_MAGIC, 0x00, struct npk_host_info)
#define NPK_HOST_IOC_IRQ_COUNTS _IOR(NPK_IOC_MAGIC, 0x01, struct npk_host_irq_counts)
/* Which vectors this open file counts (bit n = vector n; default: all), so
 * that e.g. one thread per channel sleeps on its channel's vector only.
 * Setting it restarts the file's count at zero. */
#define NPK_HOST_IOC_SET_VECTORS _IOW(NPK_IOC_MAGIC, 0x02, __u32)
/*
 * Host read(): 8 bytes, a __u64 = interrupts (of the file's vectors) since
 * its previous read; blocks until it is non-zero (EAGAIN with O_NONBLOCK).
 * poll(): POLLIN when that number is non-zero. Interrupts coalesce: one
 * means "look at the rings", never "one completion". After the device is
 * unbound or removed every operation fails with ENODEV, poll() reports
 * POLLERR|POLLHUP and existing mappings raise SIGBUS when touched.
 */

/* npk_ep_info.link: bits of the EP function's state */
#define NPK_EP_LINK_INIT       (1u << 0) /* controller initialised, BAR and header written */
#define NPK_EP_LINK_UP         (1u << 1) /* PCIe link up */
#define NPK_EP_LINK_BME        (1u << 2) /* host enabled bus mastering (6.5+ kernels) */

/* npk_ep_info.dma */
#define NPK_EP_DMA_NONE        0         /* no transfer possible (no outbound window either) */
#define NPK_EP_DMA_ENGINE      1         /* dmaengine channels (dw-edma) */
#define NPK_EP_DMA_CPU         2         /* CPU copy through the outbound window */

struct npk_ep_info {
	__u32 api_version;       /* NPK_API_VERSION */
	__u16 vendor, device;    /* IDs written to the config header */
	__u32 bar;               /* BAR number of the function */
	__u32 nchannels;         /* channel count configured through configfs */
	__u32 msi_vectors;       /* MSI vectors configured (0 = none) */
	__u32 msix_vectors;      /* MSI-X vectors configured (0 = none) */
	__u32 link;              /* NPK_EP_LINK_* */
	__u32 dma;               /* NPK_EP_DMA_* */
	__u32 dma_align;         /* required alignment of DMA offsets, addresses, lengths */
	__u32 max_xfer;          /* largest length of one NPK_EP_IOC_DMA */
	struct npk_region region[NPK_EP_NREGIONS];
	struct npk_region window; /* host window DMA may target (NPK_EP_IOC_SET_WINDOW) */
	__u64 reserved[2];
};

/* The host range every NPK_EP_IOC_DMA must stay inside: the host window the
 * server accepted from the BAR header (win_bus_addr, win_size). Page aligned;
 * size 0 clears it. Cleared when the function is unbound. */
struct npk_ep_window {
	__u64 bus_addr;
	__u64 size;
};

/* npk_ep_dma.dir */
#define NPK_EP_DMA_TO_HOST     1         /* EP region -> host bus address */
#define NPK_EP_DMA_FROM_HOST   2         /* host bus address -> EP region */

struct npk_ep_dma {
	__u32 dir;               /* NPK_EP_DMA_TO_HOST / _FROM_HOST */
	__u32 region;            /* NPK_EP_REGION_* holding the EP side */
	__u64 offset;            /* byte offset in that region */
	__u64 host_addr;         /* PCI bus address on the host, inside the window */
	__u32 len;               /* bytes, 1..max_xfer */
	__u32 flags;             /* must be 0 */
};

/* npk_ep_irq.type */
#define NPK_EP_IRQ_MSI         1
#define NPK_EP_IRQ_MSIX        2

struct npk_ep_irq {
	__u32 type;              /* NPK_EP_IRQ_* */
	__u32 vector;            /* 1-based, <= the configured count of that type */
};

/* EP read(): one struct npk_ep_event when the link state changed since this
 * file's previous read (the first read after open returns at once); blocks
 * otherwise (EAGAIN with O_NONBLOCK). poll(): POLLIN on such a change. */
struct npk_ep_event {
	__u32 link;              /* NPK_EP_LINK_* now */
	__u32 events;            /* state changes seen by the function so far */
	__u64 reserved;
};

#define NPK_EP_IOC_INFO        _IOR(NPK_IOC_MAGIC, 0x20, struct npk_ep_info)
#define NPK_EP_IOC_DMA         _IOW(NPK_IOC_MAGIC, 0x21, struct npk_ep_dma)
#define NPK_EP_IOC_RAISE_IRQ   _IOW(NPK_IOC_MAGIC, 0x22, struct npk_ep_irq)
#define NPK_EP_IOC_SET_WINDOW  _IOW(NPK_IOC_MAGIC, 0x23, struct npk_ep_window)
/* ---- end of kernel module interface ---- */

#endif /* UAPI_NBD_PCIE_LINK_H */
