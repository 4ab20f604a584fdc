/* Unit tests of the need-wakeup doorbells (docs/transport.md
 * "Notifications") over an in-process shm link pair: who rings whom and
 * when, garbage in a peer's sleeping word, peers without doorbells, and
 * threaded traffic where both sides sleep between requests. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "internal.h"
#include "pair.h"
#include "traffic.h"

static int setup_frames(void **st)
{
	*st = t_pair_new("bell", false, true, true, true);
	return 0;
}

static int setup_frames_bar_only(void **st)
{
	*st = t_pair_new("bell", true, true, true, true);
	return 0;
}

static int setup_stream(void **st)
{
	*st = t_pair_new("bell", false, true, true, false);
	return 0;
}

static int teardown(void **st)
{
	struct t_pair *p = *st;

	if (!p)
		return 0;   /* the test failed before it had a pair */
	t_pair_close(p);
	free(p);
	return 0;
}

/* Whether fd is readable within ms (a doorbell is pending). */
static bool rung(int fd, int ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	return poll(&pf, 1, ms) == 1 && (pf.revents & POLLIN);
}

static uint64_t notifies(struct npt_chan *c)
{
	struct npt_chan_stats s;

	npt_chan_get_stats(c, &s);
	return s.notifies;
}

static void host_submit_flush(struct t_pair *p, uint64_t cookie)
{
	uint8_t req[28];

	t_make_req(req, T_NBD_CMD_FLUSH, cookie, 0, 0);
	assert_int_equal(npt_host_submit(p->hc, req, NULL), 0);
}

static void ep_answer_one(struct t_pair *p)
{
	struct npt_ereq r;
	uint8_t rep[16];

	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	t_make_reply(rep, r.hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, 0), 0);
}

static void host_reap_one(struct t_pair *p)
{
	struct npt_hcomp comp;

	assert_int_equal(npt_host_reap(p->hc, &comp, 1), 1);
}

/* ---- who rings whom -------------------------------------------------------- */

static void both_sides_have_wait_fds(void **st)
{
	struct t_pair *p = *st;

	assert_true(npt_chan_wait_fd(p->hc) >= 0);
	assert_true(npt_chan_wait_fd(p->ec) >= 0);
	assert_int_not_equal(npt_chan_wait_fd(p->hc), npt_chan_wait_fd(p->ec));
	assert_non_null(strstr(npt_link_describe(p->host), "doorbells"));
	assert_non_null(strstr(npt_link_describe(p->ep), "doorbells"));
}

static void submit_rings_a_sleeping_ep_and_only_then(void **st)
{
	struct t_pair *p = *st;
	int efd = npt_chan_wait_fd(p->ec);

	/* awake EP: no doorbell */
	host_submit_flush(p, 1);
	assert_int_equal(notifies(p->hc), 0);
	assert_false(rung(efd, 0));
	ep_answer_one(p);
	host_reap_one(p);
	/* sleeping EP: exactly one */
	assert_false(npt_chan_arm(p->ec));
	assert_int_not_equal(npt_rd32(&p->hc->hctl->ep_sleeping), NPL_AWAKE);
	host_submit_flush(p, 2);
	assert_int_equal(notifies(p->hc), 1);
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	assert_int_equal(npt_rd32(&p->hc->hctl->ep_sleeping), NPL_AWAKE);
	assert_false(rung(efd, 0));      /* disarm consumed the doorbell */
	ep_answer_one(p);
	host_reap_one(p);
}

static void one_ring_per_sleep(void **st)
{
	struct t_pair *p = *st;
	int efd = npt_chan_wait_fd(p->ec);
	uint32_t first;

	assert_false(npt_chan_arm(p->ec));
	first = npt_rd32(&p->hc->hctl->ep_sleeping);
	host_submit_flush(p, 1);
	host_submit_flush(p, 2);
	host_submit_flush(p, 3);
	assert_int_equal(notifies(p->hc), 1);        /* the doorbell is pending: once is enough */
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	for (int i = 0; i < 3; i++)
		ep_answer_one(p);
	for (int i = 0; i < 3; i++)
		host_reap_one(p);
	/* the next sleep has a value of its own and is rung again */
	assert_false(npt_chan_arm(p->ec));
	assert_int_not_equal(npt_rd32(&p->hc->hctl->ep_sleeping), first);
	host_submit_flush(p, 4);
	assert_int_equal(notifies(p->hc), 2);
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	ep_answer_one(p);
	host_reap_one(p);
}

/* Held kicks: nothing rings while held; release rings once for the batch,
 * also when the peer went to sleep during it; nothing owed: no ring. */
static void held_kicks_ring_once_at_release(void **st)
{
	struct t_pair *p = *st;
	int efd = npt_chan_wait_fd(p->ec), hfd = npt_chan_wait_fd(p->hc);

	npt_chan_hold_kicks(p->hc);
	host_submit_flush(p, 1);
	assert_true(npt_chan_arm(p->ec));             /* entry pending: no sleep */
	ep_answer_one(p);
	host_reap_one(p);
	assert_false(npt_chan_arm(p->ec));            /* EP asleep inside the batch */
	host_submit_flush(p, 2);
	host_submit_flush(p, 3);
	assert_int_equal(notifies(p->hc), 0);
	assert_false(rung(efd, 0));
	npt_chan_release_kicks(p->hc);
	assert_int_equal(notifies(p->hc), 1);
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	/* the EP side: a batch of completions wakes a sleeping host once */
	assert_false(npt_chan_arm(p->hc));
	npt_chan_hold_kicks(p->ec);
	ep_answer_one(p);
	ep_answer_one(p);
	assert_int_equal(notifies(p->ec), 0);
	assert_false(rung(hfd, 0));
	npt_chan_release_kicks(p->ec);
	assert_int_equal(notifies(p->ec), 1);
	assert_true(rung(hfd, 2000));
	npt_chan_disarm(p->hc);
	host_reap_one(p);
	host_reap_one(p);
	/* a batch that published nothing rings nothing */
	assert_false(npt_chan_arm(p->ec));
	npt_chan_hold_kicks(p->hc);
	npt_chan_release_kicks(p->hc);
	assert_int_equal(notifies(p->hc), 1);
	assert_false(rung(efd, 0));
	npt_chan_disarm(p->ec);
}

/* disarm_unrung leaves a ring for the next sleep, which then ends at once
 * (an early wake-up, never a lost one); disarm consumes it. */
static void disarm_unrung_keeps_the_ring(void **st)
{
	struct t_pair *p = *st;
	int efd = npt_chan_wait_fd(p->ec);

	assert_false(npt_chan_arm(p->ec));
	npt_chan_disarm_unrung(p->ec);                /* woken by something else */
	assert_int_equal(npt_rd32(&p->hc->hctl->ep_sleeping), NPL_AWAKE);
	assert_false(rung(efd, 0));
	assert_false(npt_chan_arm(p->ec));
	host_submit_flush(p, 1);
	assert_true(rung(efd, 2000));
	npt_chan_disarm_unrung(p->ec);                /* (a caller that missed it) */
	ep_answer_one(p);
	host_reap_one(p);
	assert_false(npt_chan_arm(p->ec));
	assert_true(rung(efd, 0));                    /* the old ring ends this sleep */
	npt_chan_disarm(p->ec);
	assert_false(rung(efd, 0));
}

static void completion_rings_a_sleeping_host(void **st)
{
	struct t_pair *p = *st;
	int hfd = npt_chan_wait_fd(p->hc);
	struct npt_ereq r;
	uint8_t rep[16];

	host_submit_flush(p, 7);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	assert_false(npt_chan_arm(p->hc));          /* nothing completed yet: may sleep */
	t_make_reply(rep, r.hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, 0), 0);
	assert_int_equal(notifies(p->ec), 1);
	assert_true(rung(hfd, 2000));
	npt_chan_disarm(p->hc);
	host_reap_one(p);
	struct npt_chan_stats s;
	npt_chan_get_stats(p->hc, &s);
	assert_int_equal(s.sleeps, 1);
}

static void arm_refuses_to_sleep_when_work_is_pending(void **st)
{
	struct t_pair *p = *st;
	struct npt_ereq r;
	uint8_t rep[16];

	host_submit_flush(p, 3);
	assert_true(npt_chan_arm(p->ec));            /* an entry waits */
	assert_int_equal(npt_rd32(&p->hc->hctl->ep_sleeping), NPL_AWAKE);
	assert_int_equal(npt_ep_take(p->ec, &r, 1), 1);
	t_make_reply(rep, r.hdr, 0);
	assert_int_equal(npt_ep_complete(p->ec, &r, rep, 0), 0);
	assert_true(npt_chan_arm(p->hc));            /* a completion waits */
	assert_int_equal(npt_rd32(&p->ec->ectl->host_sleeping), NPL_AWAKE);
	host_reap_one(p);
	assert_false(npt_chan_arm(p->hc));           /* idle now */
	npt_chan_disarm(p->hc);
	assert_false(npt_chan_arm(p->ec));
	npt_chan_disarm(p->ec);
}

static void stream_bytes_and_room_ring(void **st)
{
	struct t_pair *p = *st;
	static uint8_t big[NPT_STREAM_SIZE];
	int efd = npt_chan_wait_fd(p->ec), hfd = npt_chan_wait_fd(p->hc);
	char buf[16];

	/* bytes: EP asleep on an empty stream, the host writes */
	assert_false(npt_chan_arm(p->ec));
	assert_int_equal(npt_chan_send(p->hc, "HELLO", 5), 5);
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	assert_int_equal(npt_chan_recv(p->ec, buf, sizeof(buf)), 5);
	/* room: the EP fills the EP->host stream and sleeps until the host reads */
	assert_int_equal(npt_chan_send(p->ec, big, sizeof(big)), NPT_STREAM_SIZE);
	assert_int_equal(npt_chan_send(p->ec, big, 1), -EAGAIN);
	assert_false(rung(hfd, 0));                 /* the host was awake: not rung */
	assert_false(npt_chan_arm(p->ec));          /* no room: may sleep */
	assert_int_equal(npt_chan_recv(p->hc, big, 100), 100);
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	assert_true(npt_chan_arm(p->ec));           /* room now: pending */
	assert_int_equal(npt_chan_send(p->ec, big, 200), 100);
	assert_false(npt_chan_arm(p->ec));          /* full again */
	npt_chan_disarm(p->ec);
}

static void accept_and_close_ring(void **st)
{
	struct t_pair *p = calloc(1, sizeof(*p));
	int hfd, efd;

	*st = p;
	t_pair_open(p, "bell", "", false, true, true);
	assert_int_equal(npt_chan_open(p->host, -1, &p->hc), 0);
	hfd = npt_chan_wait_fd(p->hc);
	assert_true(hfd >= 0);
	/* the host sleeps waiting for the accept; the EP's accept rings it */
	assert_false(npt_chan_arm(p->hc));
	t_pair_accept(p);
	assert_true(rung(hfd, 2000));
	npt_chan_disarm(p->hc);
	assert_true(npt_chan_arm(p->hc));            /* accepted: pending */
	assert_int_equal(npt_chan_status(p->hc), 0);
	/* the EP sleeps; the host's close rings it and arm reports it */
	efd = npt_chan_wait_fd(p->ec);
	assert_false(npt_chan_arm(p->ec));
	npt_chan_close(p->hc);
	p->hc = NULL;
	assert_true(rung(efd, 2000));
	npt_chan_disarm(p->ec);
	assert_true(npt_chan_arm(p->ec));
	assert_int_equal(npt_chan_status(p->ec), -ECONNRESET);
}

/* ---- the peer's sleeping word is untrusted input ---------------------------- */

static void garbage_in_peer_word_costs_only_doorbells(void **st)
{
	struct t_pair *p = *st;
	static const uint32_t junk[] = { 2, 0xffffffffu, 0x80000000u, 0xdeadbeefu };
	int hfd = npt_chan_wait_fd(p->hc), efd = npt_chan_wait_fd(p->ec);
	uint64_t n0 = notifies(p->hc), e0 = notifies(p->ec);

	for (unsigned i = 0; i < ARRAY_SIZE(junk); i++) {
		/* each side scribbles its own word, which the other reads */
		npt_wr32(&p->hc->hctl->ep_sleeping, junk[i]);
		npt_wr32(&p->ec->ectl->host_sleeping, junk[i]);
		host_submit_flush(p, 100 + i);
		ep_answer_one(p);
		host_reap_one(p);
		host_submit_flush(p, 200 + i);   /* same value: already rung */
		ep_answer_one(p);
		host_reap_one(p);
	}
	/* every new value rang once: extra doorbells, nothing else */
	assert_int_equal(notifies(p->hc) - n0, ARRAY_SIZE(junk));
	assert_int_equal(notifies(p->ec) - e0, ARRAY_SIZE(junk));
	assert_true(rung(hfd, 0));
	assert_true(rung(efd, 0));
	/* arming overwrites the junk and works as usual */
	assert_false(npt_chan_arm(p->ec));
	assert_int_not_equal(npt_rd32(&p->ec->hctl->ep_sleeping), NPL_AWAKE);
	npt_chan_disarm(p->ec);
	assert_false(rung(efd, 0));
	assert_int_equal(npt_chan_status(p->hc), 0);
	assert_int_equal(npt_chan_status(p->ec), 0);
}

/* ---- peers without doorbells ------------------------------------------------ */

static void frames_by_polling(struct t_pair *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		host_submit_flush(p, 1000 + i);
		ep_answer_one(p);
		host_reap_one(p);
	}
}

static void host_without_doorbell_is_polled_and_never_rung(void **st)
{
	struct t_pair *p = t_pair_new("bell", true, true, false, true);   /* like a BAR-only guest host */

	*st = p;
	assert_int_equal(npt_chan_wait_fd(p->hc), -1);
	/* the host does not ring, so the EP must not sleep either */
	assert_int_equal(npt_chan_wait_fd(p->ec), -1);
	assert_true(npt_chan_arm(p->hc));
	assert_true(npt_chan_arm(p->ec));
	assert_int_equal(npt_rd32(&p->ec->hctl->ep_sleeping), NPL_AWAKE);
	assert_int_equal(npt_rd32(&p->hc->ectl->host_sleeping), NPL_AWAKE);
	assert_int_equal(npt_rd32(&p->host->hdr->host_features) & NPL_F_DOORBELL, 0);
	frames_by_polling(p, 50);
	assert_int_equal(notifies(p->hc), 0);
	assert_int_equal(notifies(p->ec), 0);
}

static void ep_without_doorbell_is_polled(void **st)
{
	struct t_pair *p = t_pair_new("bell", false, false, true, true);

	*st = p;
	assert_int_equal(npt_rd32(&p->ep->hdr->features) & NPL_F_DOORBELL, 0);
	assert_int_equal(npt_chan_wait_fd(p->hc), -1);
	assert_int_equal(npt_chan_wait_fd(p->ec), -1);
	frames_by_polling(p, 50);
	assert_int_equal(notifies(p->hc) + notifies(p->ec), 0);
	assert_null(strstr(npt_link_describe(p->host), "doorbells"));
}

/* A peer that promised doorbells and never rings costs the sleeper only the
 * bound of its sleep: the request still completes after it. */
static void silent_peer_costs_only_the_sleep_bound(void **st)
{
	struct t_pair *p = *st;
	int efd = npt_chan_wait_fd(p->ec);

	p->hc->ring_peer = false;       /* the host "forgets" to ring */
	assert_false(npt_chan_arm(p->ec));
	host_submit_flush(p, 9);
	assert_false(rung(efd, 50));    /* the sleep ends by its bound */
	npt_chan_disarm(p->ec);
	ep_answer_one(p);
	host_reap_one(p);
}

/* ---- both sides sleep between requests (threads; TSan) --------------------- */

struct ep_thread {
	struct npt_chan *c;
	struct traffic_stats st;
	int result;
};

static void *ep_main(void *arg)
{
	struct ep_thread *t = arg;

	t->result = traffic_ep_serve(t->c, NULL, &t->st);
	return NULL;
}

static void both_sides_sleep_between_requests(void **st)
{
	struct t_pair *p = calloc(1, sizeof(*p));
	struct traffic_opts o = { .requests = 2000, .seed = 5, .max_len = 64 << 10, .max_qd = 2,
				  .pause_max_us = 500 };
	struct traffic_stats hs = { 0 };
	struct ep_thread et = { 0 };
	pthread_t th;

	*st = p;
	memset(&traffic_wait, 0, sizeof(traffic_wait));
	traffic_wait.sleep = traffic_wait.require = true;
	traffic_wait.timeout_ms = 5000;
	t_pair_open(p, "bell", "", false, true, true);
	assert_int_equal(npt_chan_open(p->host, -1, &p->hc), 0);
	t_pair_accept(p);
	et.c = p->ec;
	assert_int_equal(pthread_create(&th, NULL, ep_main, &et), 0);
	assert_int_equal(traffic_host_handshake(p->hc, 5000), 0);
	assert_int_equal(traffic_host_run(p->hc, &o, &hs), 0);
	npt_chan_close(p->hc);          /* ends the EP's serve loop (it rings the EP) */
	p->hc = NULL;
	pthread_join(th, NULL);
	assert_int_equal(et.result, 0);
	assert_int_equal(hs.requests, o.requests);
	assert_int_equal(et.st.requests, o.requests);
	assert_int_equal(hs.bad_data + hs.bad_replies + et.st.bad_data, 0);
	print_message("doorbell: %llu sleeps, %llu woken, %llu timed out, %llu doorbells\n",
		      (unsigned long long)traffic_wait.sleeps, (unsigned long long)traffic_wait.wakes,
		      (unsigned long long)traffic_wait.timeouts, (unsigned long long)traffic_wait.notifies);
	assert_int_equal(traffic_wait.timeouts, 0);      /* no lost wake-up */
	assert_true(traffic_wait.sleeps >= o.requests / 4);
	assert_true(traffic_wait.notifies > 0);
	memset(&traffic_wait, 0, sizeof(traffic_wait));
}

#define F(t) cmocka_unit_test_setup_teardown(t, setup_frames, teardown)
#define B(t) cmocka_unit_test_setup_teardown(t, setup_frames_bar_only, teardown)
#define S(t) cmocka_unit_test_setup_teardown(t, setup_stream, teardown)
#define N(t) cmocka_unit_test_teardown(t, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(both_sides_have_wait_fds),
		F(submit_rings_a_sleeping_ep_and_only_then),
		B(submit_rings_a_sleeping_ep_and_only_then),
		F(one_ring_per_sleep),
		F(held_kicks_ring_once_at_release),
		B(held_kicks_ring_once_at_release),
		F(disarm_unrung_keeps_the_ring),
		F(completion_rings_a_sleeping_host),
		B(completion_rings_a_sleeping_host),
		F(arm_refuses_to_sleep_when_work_is_pending),
		S(stream_bytes_and_room_ring),
		N(accept_and_close_ring),
		F(garbage_in_peer_word_costs_only_doorbells),
		N(host_without_doorbell_is_polled_and_never_rung),
		N(ep_without_doorbell_is_polled),
		F(silent_peer_costs_only_the_sleep_bound),
		N(both_sides_sleep_between_requests),
	};
	unsetenv("NPT_DOORBELL");   /* a side has doorbells unless a test says not */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
