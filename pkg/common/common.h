/* common.h: small helpers that more than one daemon needs. */
#ifndef VTPM_COMMON_H
#define VTPM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#define VTPM_VERSION "0.1.0"
#define PATH_LEN     4096

/* paths.c: every daemon takes --root DIR; all its paths live under it. */
struct paths {
	char root[PATH_LEN];    /* "" means the real file system root */
	char run[PATH_LEN];     /* <root>/run/vtpm: sockets, pid files */
	char persist[PATH_LEN]; /* <root>/persist */
	char state[PATH_LEN];   /* <root>/persist/swtpm: per-VM state dirs */
	char vault[PATH_LEN];   /* <root>/persist/vtpm: key broker's files */
};
int paths_init(struct paths *p, const char *root);
/* Creates run, persist, state and vault directories (0700) when missing. */
int paths_mkdirs(const struct paths *p);
/* snprintf into dst of dstlen; -1 (and a log line) when it does not fit. */
int path_join(char *dst, size_t dstlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* durable.c: writes that survive a power cut at any instant. */
/* Write buf to path via a temp file in the same directory: write, fsync,
 * rename, fsync dir. Either the old or the new content is visible, never a
 * mixture. */
int durable_write(const char *path, const void *buf, size_t len, mode_t mode);
int fsync_dir(const char *dir);
int fsync_path(const char *path);
/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, mode_t mode);
/* Read a whole file (at most maxlen bytes) into a malloc'd NUL-terminated
 * buffer; caller frees. -1 with errno set (EFBIG when too large). */
int read_file(const char *path, size_t maxlen, char **out, size_t *outlen);
/* rm -rf; only used on directories we own. */
int remove_tree(const char *path);

/* opts.c: the options every daemon shares. */
struct common_opts {
	struct paths paths;
	int          verbose;   /* LOG_LVL_* */
	int          syslog;    /* also log to syslog */
	int          checkonly; /* -n: check config and exit */
	int exit_status; /* common_opts_handle returned -1: exit with this */
};
/* Long options every daemon accepts; put first in the daemon's table. */
#define COMMON_LONGOPTS                                                        \
	{"root", required_argument, NULL, 'R'},                                \
	    {"verbose", no_argument, NULL, 'v'},                               \
	    {"quiet", no_argument, NULL, 'q'},                                 \
	    {"syslog", no_argument, NULL, 'S'},                                \
	    {"help", no_argument, NULL, 'h'},                                  \
	{                                                                      \
		"version", no_argument, NULL, 'V'                              \
	}
#define COMMON_SHORTOPTS "R:vqShVn"
void common_opts_init(struct common_opts *o);
/* Handles a common option: 1 when handled, 0 when not ours, -1 when main
 * is to exit with o->exit_status (--help and --version printed: 0; a bad
 * --root: 2, message printed). */
int  common_opts_handle(struct common_opts *o, int c, const char *arg,
                        const char *prog, void (*usage)(FILE *));
void common_usage(FILE *f);
/* A whole decimal number in [min, max] (option values): 0, or -1. */
int opt_int(const char *s, int min, int max, int *out);
/* Applies --root, creates directories, starts logging. */
int common_opts_finish(struct common_opts *o, const char *procname);

/* secmem.c: memory for keys: locked, not dumped, wiped on free. */
void *secmem_alloc(size_t len);
void  secmem_free(void *p, size_t len);

/* misc.c */
uint64_t now_ms(void); /* CLOCK_MONOTONIC */
uint64_t now_us(void);
void     sleep_ms(unsigned ms);

/* signals.c */
/* Set by SIGTERM/SIGINT once signals_catch_quit() ran; SIGPIPE is ignored. */
extern volatile sig_atomic_t sig_quit;
void                         signals_catch_quit(void);

/* misc.c */
/* snprintf into a bounded reason or error buffer that may truncate on
 * purpose (gcc's -Wformat-truncation does not look through it). */
void strfmt(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool uuid_valid(const char *s); /* 8-4-4-4-12 hex, lower or upper */

#endif
