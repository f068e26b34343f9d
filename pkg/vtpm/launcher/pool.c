/*
 * pool.c: worker threads for blocking jobs. Threads are created on
 * demand up to the maximum (--max-parallel) and then kept; finished jobs
 * go to a done list and an eventfd wakes the main loop.
 */
#include "launcher.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POOL_STACK (256 * 1024)

struct pool {
	const struct launcher_cfg *cfg;
	pthread_mutex_t            mu;
	pthread_cond_t             cv;
	struct job                *queue, **qtail; /* waiting jobs, FIFO */
	struct job                *done;           /* finished, any order */
	int                        max, nthreads, idle, busy;
	int                        nqueued; /* jobs in queue */
	bool                       closing;
	int                        efd;
	pthread_t                 *threads;
};

static void *
worker(void *arg)
{
	struct pool *p = arg;
	struct job  *j;
	uint64_t     one = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->queue == NULL && !p->closing) {
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
		}
		if (p->queue == NULL) {
			break;
		}
		j = p->queue;
		p->queue = j->next;
		p->nqueued--;
		if (p->queue == NULL) {
			p->qtail = &p->queue;
		}
		pthread_mutex_unlock(&p->mu);
		job_run(p->cfg, j);
		pthread_mutex_lock(&p->mu);
		j->next = p->done;
		p->done = j;
		p->busy--;
		if (write(p->efd, &one, sizeof(one)) < 0) {
			log_warn("pool: eventfd write");
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
pool_open(struct pool **pp, const struct launcher_cfg *cfg, int max)
{
	struct pool *p;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->threads = calloc((size_t) max, sizeof(pthread_t))) == NULL) {
		free(p);
		return -1;
	}
	p->cfg = cfg;
	p->max = max;
	p->qtail = &p->queue;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		free(p->threads);
		free(p);
		return -1;
	}
	*pp = p;
	return 0;
}

/* Start another worker when queued jobs outnumber idle ones (mu held).
 * -1 when none runs at all and none can be started: the queue waits. */
static int
pool_grow(struct pool *p)
{
	pthread_attr_t at;
	int            err;

	/* a woken idle thread counts as idle until it takes its job */
	if (p->nqueued <= p->idle || p->nthreads >= p->max) {
		return 0;
	}
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, POOL_STACK);
	err = pthread_create(&p->threads[p->nthreads], &at, worker, p);
	pthread_attr_destroy(&at);
	if (err == 0) {
		p->nthreads++;
		return 0;
	}
	if (p->nthreads == 0) {
		log_warnx("pool: cannot create a worker thread: %s; %d job(s) "
		          "wait",
		          strerror(err), p->nqueued);
		return -1;
	}
	return 0; /* the running workers take it in turn */
}

int
pool_submit(struct pool *p, struct job *j)
{
	int rc;

	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	*p->qtail = j;
	p->qtail = &j->next;
	p->busy++;
	p->nqueued++;
	rc = pool_grow(p);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
pool_retry(struct pool *p)
{
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = p->nthreads == 0 && p->nqueued > 0 ? pool_grow(p) : 0;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
pool_fd(struct pool *p)
{
	return p->efd;
}

struct job *
pool_take_done(struct pool *p)
{
	struct job *j;
	uint64_t    n;

	if (read(p->efd, &n, sizeof(n)) < 0) {
		n = 0; /* nothing signalled yet: fine */
	}
	pthread_mutex_lock(&p->mu);
	j = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->mu);
	return j;
}

int
pool_busy(struct pool *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->busy;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void
pool_close(struct pool *p)
{
	if (p == NULL) {
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->closing = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++) {
		pthread_join(p->threads[i], NULL);
	}
	close(p->efd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}
