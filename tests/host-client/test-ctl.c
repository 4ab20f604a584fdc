/* The control socket's WHO question (npc_ctl_who): a holder answering
 * "PID n" is named by its pid; any other answer, or none, is reported as
 * "(unknown: ...)" with the answer itself (it is built from a copy: the
 * answer and the result share the caller's buffer). And every question
 * (WHO, LIST, ATTACH) asked of a holder that closes it unanswered. */
#include <stdbool.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

struct holder {
	int lfd;
	const char *answer;   /* sent after reading the question */
	char question[64];
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	struct pollfd p = { .fd = h->lfd, .events = POLLIN };
	ssize_t n;
	int fd;

	/* the control socket is non-blocking: wait for the question */
	if (poll(&p, 1, 10000) != 1 || (fd = accept(h->lfd, NULL, NULL)) < 0)
		return NULL;
	n = read(fd, h->question, sizeof(h->question) - 1);
	h->question[n > 0 ? n : 0] = '\0';
	if (h->answer[0] && write(fd, h->answer, strlen(h->answer)) < 0)
		h->question[0] = '\0';
	close(fd);
	return NULL;
}

/* Asks WHO of a fake holder of a fresh link name that answers `answer`. */
static void ask(const char *answer, char *who, size_t wholen, int *ret, char *question)
{
	char link[64], err[256];
	struct holder h = { .answer = answer };
	pthread_t t;

	snprintf(link, sizeof(link), "shm:/dev/shm/test-ctl-%d-%zu", (int)getpid(), strlen(answer));
	h.lfd = npc_ctl_listen(link, err, sizeof(err));
	assert_true(h.lfd >= 0);
	assert_int_equal(pthread_create(&t, NULL, holder_main, &h), 0);
	*ret = npc_ctl_who(link, who, wholen);
	pthread_join(t, NULL);
	close(h.lfd);
	strcpy(question, h.question);
}

/* The holder was asked WHO and its answer gave `want`. */
static void expect_who(const char *answer, const char *want)
{
	char who[64], q[64];
	int r;

	ask(answer, who, sizeof(who), &r, q);
	assert_int_equal(r, 0);
	assert_string_equal(q, "WHO\n");
	assert_string_equal(who, want);
}

static void test_pid_answer(void **state)
{
	(void)state;
	expect_who("PID 4242\n", "4242");
}

static void test_other_answer(void **state)
{
	(void)state;
	expect_who("HELLO THERE\n", "(unknown: HELLO THERE)");
}

static void test_long_answer_truncated(void **state)
{
	char answer[200], who[48], q[64], want[48];
	int r;

	(void)state;
	memset(answer, 'x', sizeof(answer) - 2);
	answer[sizeof(answer) - 2] = '\n';
	answer[sizeof(answer) - 1] = '\0';
	ask(answer, who, sizeof(who), &r, q);
	assert_int_equal(r, 0);
	/* the answer fills who (47 bytes); the message keeps what fits */
	memcpy(want, "(unknown: ", 10);
	memset(want + 10, 'x', sizeof(want) - 11);
	want[sizeof(want) - 1] = '\0';
	assert_int_equal(strlen(who), sizeof(who) - 1);
	assert_memory_equal(who, want, sizeof(who) - 1);
}

/* A holder that takes a connection into its backlog and closes it
 * unanswered (an owner exiting after its last device) is asked again:
 * a holder still there answers the second time; one that is gone leaves
 * the link to the caller (-ECONNREFUSED), for WHO, LIST and ATTACH alike. */
struct dropper {
	int lfd;
	bool vanish;     /* after the drop, stop listening (the owner exited) */
	int accepted;
};

static void *dropper_main(void *arg)
{
	struct dropper *h = arg;

	for (;;) {
		struct pollfd p = { .fd = h->lfd, .events = POLLIN };
		char q[2048];
		int fd;

		if (poll(&p, 1, 10000) != 1 || (fd = accept(h->lfd, NULL, NULL)) < 0)
			return NULL;
		if (h->accepted++ == 0) {
			close(fd);   /* unanswered */
			if (h->vanish) {
				close(h->lfd);
				h->lfd = -1;
				return NULL;
			}
			continue;
		}
		if (read(fd, q, sizeof(q)) > 0 && write(fd, "PID 77\n", 7) < 0)
			h->accepted = -100;
		close(fd);
		return NULL;
	}
}

static void test_holder_closing_unanswered(void **state)
{
	char link[64], err[256], who[64];
	struct npc_opts o = { .name = "disk" };
	pthread_t t;
	int r;

	(void)state;
	for (int vanish = 0; vanish < 2; vanish++) {
		for (int kind = 0; kind < 3; kind++) {
			struct dropper h = { .vanish = vanish };

			snprintf(link, sizeof(link), "shm:/dev/shm/test-ctl-drop-%d-%d-%d", (int)getpid(),
			         vanish, kind);
			o.link = link;
			h.lfd = npc_ctl_listen(link, err, sizeof(err));
			assert_true(h.lfd >= 0);
			assert_int_equal(pthread_create(&t, NULL, dropper_main, &h), 0);
			if (kind == 0)
				r = npc_ctl_who(link, who, sizeof(who));
			else if (kind == 1)
				r = npc_ctl_list(link, NULL, NULL, err, sizeof(err));
			else
				r = npc_ctl_attach(&o, err, sizeof(err));
			pthread_join(t, NULL);
			if (h.lfd >= 0)
				close(h.lfd);
			if (vanish) {
				assert_int_equal(r, -ECONNREFUSED);
				assert_int_equal(h.accepted, 1);
				continue;
			}
			assert_int_equal(h.accepted, 2);
			if (kind == 0) {
				assert_int_equal(r, 0);
				assert_string_equal(who, "77");
			} else {
				/* "PID 77" is not what LIST or ATTACH expect: an error
				 * that quotes it, from the second holder's answer */
				assert_int_not_equal(r, 0);
				assert_non_null(strstr(err, "PID 77"));
			}
		}
	}
}

static void test_no_holder(void **state)
{
	char who[64];

	(void)state;
	assert_int_equal(npc_ctl_who("shm:/dev/shm/test-ctl-nobody-here", who, sizeof(who)),
	                 -ECONNREFUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pid_answer),
		cmocka_unit_test(test_other_answer),
		cmocka_unit_test(test_long_answer_truncated),
		cmocka_unit_test(test_no_holder),
		cmocka_unit_test(test_holder_closing_unanswered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
