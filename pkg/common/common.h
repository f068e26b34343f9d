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
	char root[PATH_LEN];      /* "" means the real file system root */
	char run[PATH_LEN];       /* <root>/run/vtpm: sockets, pid files */
	char persist[PATH_LEN];   /* <root>/persist */
	char state[PATH_LEN];     /* <root>/persist/swtpm: per-VM state dirs */
	char vault[PATH_LEN];     /* <root>/persist/vtpm: key broker's files */
	char ephemeral[PATH_LEN]; /* <run>/ephemeral: ephemeral VMs' state */
};
int paths_init(struct paths *p, const char *root);
/* Creates run, persist, state and vault directories (0700) when missing. */
int paths_mkdirs(const struct paths *p);
/* The swtpm state directory of VM uuid, the one place that names it:
 * <state>/tpm-state-<uuid>, or <ephemeral>/tpm-state-<uuid>. 0, or -1
 * (and a log line) when it does not fit. */
int paths_state_dir(const struct paths *p, bool ephemeral, const char *uuid,
                    char *dst, size_t len);
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

/* io.c: whole-buffer I/O that retries EINTR and short transfers. */
/* All len bytes of buf to fd (file, pipe or socket; never SIGPIPE on a
 * socket). 0, or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* Up to len bytes from fd, stopping early only at end of file. The count
 * read (less than len only at end of file), or -1 with errno. */
ssize_t read_all(int fd, void *buf, size_t len);

/* hex.c: the one hex encoder and decoder. */
/* 2n lowercase hex digits of b and a NUL into out; when outlen is short,
 * as many whole bytes as fit (out is always terminated when outlen > 0). */
void hex_encode(const uint8_t *b, size_t n, char *out, size_t outlen);
/* Exactly len characters of s, all hex digits (either case; no sign, no
 * space, no "0x"), into out of max bytes. The byte count, or -1 when len
 * is odd, the bytes do not fit, or a character is not a hex digit. */
int hex_decode(const char *s, size_t len, uint8_t *out, size_t max);
/* hex_decode of all of the NUL-terminated s (NULL is an error). */
int hex_decode_str(const char *s, uint8_t *out, size_t max);
/* s must be exactly 2n hex digits: 0, or -1. */
int hex_decode_exact(const char *s, uint8_t *out, size_t n);

#endif
