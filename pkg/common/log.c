/* log.c: one place that formats log lines; stderr always, syslog on request. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int         log_verbose = LOG_LVL_INFO;
static int         log_syslog;
static const char *log_procname = "vtpm";
/* Whole lines from concurrent threads must not interleave. */
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

void
log_init(int verbose, int use_syslog)
{
	log_verbose = verbose;
	log_syslog = use_syslog;
	if (use_syslog) {
		openlog(log_procname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	tzset();
}

void
log_procinit(const char *procname)
{
	if (procname != NULL) {
		log_procname = procname;
	}
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

static void
vlog(int level, const char *suffix, const char *fmt, va_list ap)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	static const int   prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char               msg[2048];
	struct timespec    ts;
	struct tm          tm;
	char               stamp[32];

	if (level > log_verbose) {
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&log_mtx);
	fprintf(stderr, "%s.%03ldZ %s[%d]: %s: %s%s%s\n", stamp,
	        ts.tv_nsec / 1000000, log_procname, (int) getpid(),
	        names[level], msg, suffix ? ": " : "", suffix ? suffix : "");
	if (log_syslog) {
		syslog(prio[level], "%s%s%s", msg, suffix ? ": " : "",
		       suffix ? suffix : "");
	}
	pthread_mutex_unlock(&log_mtx);
}

#define LOG_BODY(level, suffix)                                                \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		vlog(level, suffix, fmt, ap);                                  \
		va_end(ap);                                                    \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	char err[128];
	/* strerror_r (GNU) may return a static string instead of filling err */
	const char *s = strerror_r(errno, err, sizeof(err));

	LOG_BODY(LOG_LVL_WARN, s);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_WARN, NULL);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
	char        err[128];
	const char *s = strerror_r(errno, err, sizeof(err));

	LOG_BODY(LOG_LVL_ERROR, s);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, NULL);
	exit(1);
}
