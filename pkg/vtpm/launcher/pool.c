/*
 * pool.c: worker threads for blocking jobs. A fixed number of threads
 * (--max-parallel) with small stacks is made at open; jobs wait in a FIFO
 * when all are busy, finished jobs go to a done list and an eventfd wakes
 * the main loop. Memory does not grow with the number of VMs: at most
 * two malloc arenas (glibc otherwise gives each thread its own, which is
 * what made a 256-thread launcher take 20-37 MB).
 */
#include "launcher.h"
#include "log.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POOL_STACK (128 * 1024) /* deepest: ESAPI + OpenSSL in ek.c */

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
	struct pool   *p;
	pthread_attr_t at;
	int            rv;

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
	(void) mallopt(M_ARENA_MAX, 2);
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, POOL_STACK);
	for (int i = 0; i < max; i++) {
		if ((rv = pthread_create(&p->threads[i], &at, worker, p)) !=
		    0) {
			log_warnx("pool: worker thread %d of %d: %s", i + 1,
			          max, strerror(rv));
			break;
		}
		p->nthreads++;
	}
	pthread_attr_destroy(&at);
	if (p->nthreads < max) {
		pool_close(p);
		return -1;
	}
	*pp = p;
	return 0;
}

int
pool_submit(struct pool *p, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	*p->qtail = j;
	p->qtail = &j->next;
	p->busy++;
	p->nqueued++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0; /* every worker exists from pool_open on */
}

int
pool_retry(struct pool *p)
{
	(void) p; /* nothing to start: the pool is made whole at open */
	return 0;
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
