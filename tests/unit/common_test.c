/* common_test.c: the helpers of pkg/common,
 * their results and their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

static char dir[64];

static int
setup(void **state)
{
	(void) state;
	snprintf(dir, sizeof(dir), "/tmp/common-test.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void) state;
	return remove_tree(dir);
}

/* entries in d other than . and .. */
static int
count_entries(const char *d)
{
	DIR           *h = opendir(d);
	struct dirent *e;
	int            n = 0;

	assert_non_null(h);
	while ((e = readdir(h)) != NULL) {
		n +=
		    strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	}
	closedir(h);
	return n;
}

static void
write_plain(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(s, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_durable_write(void **state)
{
	char        path[PATH_LEN], sub[PATH_LEN], *buf = NULL;
	size_t      len = 0;
	struct stat st;
	mode_t      old = umask(022);

	(void) state;
	assert_int_equal(path_join(sub, sizeof(sub), "%s/dw", dir), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(path_join(path, sizeof(path), "%s/f", sub), 0);
	/* new file: content and mode */
	assert_int_equal(durable_write(path, "first", 5, 0600), 0);
	assert_int_equal(read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "first");
	free(buf);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* replaced as a whole, shorter content leaves no tail */
	assert_int_equal(durable_write(path, "2nd", 3, 0600), 0);
	assert_int_equal(read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_string_equal(buf, "2nd");
	free(buf);
	/* binary content with NULs, and an empty file */
	assert_int_equal(durable_write(path, "a\0b", 3, 0600), 0);
	assert_int_equal(read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "a\0b", 3);
	free(buf);
	assert_int_equal(durable_write(path, "", 0, 0600), 0);
	assert_int_equal(read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 0);
	free(buf);
	/* no temporary file left behind */
	assert_int_equal(count_entries(sub), 1);
	/* errors: the directory is missing; the target is a directory (the
	 * rename fails: the temporary file is removed again) */
	assert_int_equal(path_join(path, sizeof(path), "%s/nodir/f", dir), 0);
	errno = 0;
	assert_int_equal(durable_write(path, "x", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(durable_write(dir, "x", 1, 0600), -1);
	assert_int_not_equal(errno, 0);
	assert_int_equal(count_entries(sub), 1);
	umask(old);
}

static void
test_read_file_limits(void **state)
{
	char   path[PATH_LEN], *buf = NULL;
	size_t len = 99;

	(void) state;
	assert_int_equal(path_join(path, sizeof(path), "%s/rf", dir), 0);
	write_plain(path, "0123456789");
	/* exactly the limit: read, NUL-terminated */
	assert_int_equal(read_file(path, 10, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_int_equal(buf[10], '\0');
	assert_string_equal(buf, "0123456789");
	free(buf);
	/* outlen may be NULL */
	assert_int_equal(read_file(path, 10, &buf, NULL), 0);
	free(buf);
	/* one byte over: EFBIG, nothing handed out */
	buf = NULL;
	errno = 0;
	assert_int_equal(read_file(path, 9, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(buf);
	/* missing file */
	assert_int_equal(path_join(path, sizeof(path), "%s/none", dir), 0);
	errno = 0;
	assert_int_equal(read_file(path, 10, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(buf);
}

static void
test_path_join(void **state)
{
	char b[8];

	(void) state;
	assert_int_equal(path_join(b, sizeof(b), "%s/%s", "ab", "cd"), 0);
	assert_string_equal(b, "ab/cd");
	/* exactly fits (7 characters and the NUL) */
	assert_int_equal(path_join(b, sizeof(b), "%s", "1234567"), 0);
	assert_string_equal(b, "1234567");
	/* one over: refused, never silently cut */
	errno = 0;
	assert_int_equal(path_join(b, sizeof(b), "%s", "12345678"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

static void
test_paths(void **state)
{
	struct paths p;
	char         root[PATH_LEN + 8];
	struct stat  st;

	(void) state;
	assert_int_equal(paths_init(&p, NULL), 0);
	assert_string_equal(p.root, "");
	assert_string_equal(p.run, "/run/vtpm");
	assert_string_equal(p.persist, "/persist");
	assert_string_equal(p.state, "/persist/swtpm");
	assert_string_equal(p.vault, "/persist/vtpm");
	/* trailing slashes do not double */
	assert_int_equal(paths_init(&p, "/r//"), 0);
	assert_string_equal(p.root, "/r");
	assert_string_equal(p.run, "/r/run/vtpm");
	assert_string_equal(p.state, "/r/persist/swtpm");
	/* a root that leaves no room */
	memset(root, 'a', sizeof(root) - 1);
	root[sizeof(root) - 1] = '\0';
	errno = 0;
	assert_int_equal(paths_init(&p, root), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	root[PATH_LEN - 8] = '\0'; /* fits, "/run/vtpm" does not */
	assert_int_equal(paths_init(&p, root), -1);
	/* mkdirs: all four, 0700 */
	assert_int_equal(path_join(root, sizeof(root), "%s/pr", dir), 0);
	assert_int_equal(paths_init(&p, root), 0);
	assert_int_equal(paths_mkdirs(&p), 0);
	assert_int_equal(stat(p.run, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(p.vault, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(stat(p.state, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(paths_mkdirs(&p), 0); /* again: nothing to do */
}

static void
test_mkdir_p(void **state)
{
	char        path[PATH_LEN], file[PATH_LEN];
	struct stat st;

	(void) state;
	assert_int_equal(path_join(path, sizeof(path), "%s/a/b/c", dir), 0);
	assert_int_equal(mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(mkdir_p(path, 0700), 0); /* exists: fine */
	/* a trailing slash is fine too */
	assert_int_equal(path_join(path, sizeof(path), "%s/a/d/", dir), 0);
	assert_int_equal(mkdir_p(path, 0700), 0);
	assert_int_equal(path_join(path, sizeof(path), "%s/a/d", dir), 0);
	assert_int_equal(stat(path, &st), 0);
	/* a file in the way, as a parent or as the last component */
	assert_int_equal(path_join(file, sizeof(file), "%s/a/file", dir), 0);
	write_plain(file, "x");
	assert_int_equal(path_join(path, sizeof(path), "%s/sub", file), 0);
	errno = 0;
	assert_int_equal(mkdir_p(path, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_int_equal(mkdir_p(file, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	/* empty path */
	errno = 0;
	assert_int_equal(mkdir_p("", 0700), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_remove_tree(void **state)
{
	char path[PATH_LEN], f[PATH_LEN], link[PATH_LEN], keep[PATH_LEN];

	(void) state;
	assert_int_equal(path_join(path, sizeof(path), "%s/rt/x/y", dir), 0);
	assert_int_equal(mkdir_p(path, 0700), 0);
	assert_int_equal(path_join(f, sizeof(f), "%s/file", path), 0);
	write_plain(f, "x");
	/* a symlink out of the tree: removed, its target is not */
	assert_int_equal(path_join(keep, sizeof(keep), "%s/keep", dir), 0);
	assert_int_equal(mkdir(keep, 0700), 0);
	assert_int_equal(path_join(f, sizeof(f), "%s/keep/k", dir), 0);
	write_plain(f, "k");
	assert_int_equal(path_join(link, sizeof(link), "%s/rt/ln", dir), 0);
	assert_int_equal(symlink(keep, link), 0);
	assert_int_equal(path_join(path, sizeof(path), "%s/rt", dir), 0);
	assert_int_equal(remove_tree(path), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access(f, F_OK), 0);
	/* nothing there: not an error */
	assert_int_equal(remove_tree(path), 0);
}

static void
test_opt_int(void **state)
{
	int v = 7;

	(void) state;
	assert_int_equal(opt_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(opt_int("0", 0, 100, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(opt_int("100", 0, 100, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(opt_int("-5", -10, 0, &v), 0);
	assert_int_equal(v, -5);
	/* refused, and *out left alone */
	v = 7;
	assert_int_equal(opt_int("", 0, 100, &v), -1);
	assert_int_equal(opt_int("101", 0, 100, &v), -1);
	assert_int_equal(opt_int("-1", 0, 100, &v), -1);
	assert_int_equal(opt_int("4x", 0, 100, &v), -1);
	assert_int_equal(opt_int("x4", 0, 100, &v), -1);
	assert_int_equal(opt_int("1.5", 0, 100, &v), -1);
	assert_int_equal(opt_int("99999999999999999999", 0, 100, &v), -1);
	assert_int_equal(opt_int("2147483648", 0, 2147483647, &v), -1);
	assert_int_equal(v, 7);
}

static void
test_strfmt(void **state)
{
	char b[6];

	(void) state;
	strfmt(b, sizeof(b), "%s-%d", "ab", 1);
	assert_string_equal(b, "ab-1");
	/* truncates on purpose, always terminated */
	memset(b, 'z', sizeof(b));
	strfmt(b, sizeof(b), "%s", "abcdefgh");
	assert_string_equal(b, "abcde");
	memset(b, 'z', sizeof(b));
	strfmt(b, 1, "%s", "abc");
	assert_int_equal(b[0], '\0');
	assert_int_equal(b[1], 'z'); /* nothing past the given length */
}

static void
test_uuid_valid(void **state)
{
	(void) state;
	assert_true(uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c8"));
	assert_true(uuid_valid("6BA7B810-9DAD-11D1-80B4-00C04FD430C8"));
	assert_false(uuid_valid(NULL));
	assert_false(uuid_valid(""));
	assert_false(uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c"));
	assert_false(uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c8a"));
	assert_false(uuid_valid("6ba7b8109-dad-11d1-80b4-00c04fd430c8"));
	assert_false(uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430cg"));
	assert_false(uuid_valid("6ba7b810x9dad-11d1-80b4-00c04fd430c8"));
	assert_false(uuid_valid("../../../../etc/passwd-aaaaaaaaaaaaa"));
}

/* The VmFlags of the mapping holding p (/proc/self/smaps), "" if none. */
static void
vm_flags(const void *p, char *flags, size_t len)
{
	FILE         *f = fopen("/proc/self/smaps", "r");
	char          line[512];
	unsigned long lo, hi, a = (unsigned long) p;
	int           in = 0;

	assert_non_null(f);
	flags[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
		} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, len, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static void
test_secmem(void **state)
{
	uint8_t *p = secmem_alloc(8192);
	char     flags[256];

	(void) state;
	assert_non_null(p);
	/* kept out of core dumps and forked children (ASan turns mlock
	 * into a no-op, so "lo" is not checked here) */
	vm_flags(p, flags, sizeof(flags));
	assert_non_null(strstr(flags, " dd"));
	assert_non_null(strstr(flags, " dc"));
	for (int i = 0; i < 8192; i++) {
		assert_int_equal(p[i], 0); /* fresh pages are zero */
		p[i] = (uint8_t) i;
	}
	assert_int_equal(p[8191], (uint8_t) 8191);
	secmem_free(p, 8192);
	/* unmapped after the free */
	vm_flags(p, flags, sizeof(flags));
	assert_null(strstr(flags, " dd"));
	secmem_free(NULL, 16); /* nothing to do */
	assert_null(secmem_alloc(0));
}

static void
test_hex(void **state)
{
	const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7e};
	uint8_t       out[8];
	char          h[16];

	(void) state;
	hex_encode(in, sizeof(in), h, sizeof(h));
	assert_string_equal(h, "0001abff7e");
	memset(out, 0, sizeof(out));
	assert_int_equal(hex_decode_str(h, out, sizeof(out)), 5);
	assert_memory_equal(out, in, sizeof(in));
	/* upper case reads the same */
	assert_int_equal(hex_decode_str("0001ABFF7E", out, 5), 5);
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(hex_decode_str("", out, 5), 0);
	/* output too small: whole bytes only, always terminated */
	memset(h, 'z', sizeof(h));
	hex_encode(in, sizeof(in), h, 6);
	assert_string_equal(h, "0001");
	hex_encode(in, sizeof(in), h, 7);
	assert_string_equal(h, "0001ab");
	hex_encode(in, sizeof(in), h, 1);
	assert_string_equal(h, "");
	/* refused: odd length, non-hex digits (which sscanf("%2x") let
	 * through), more bytes than room */
	assert_int_equal(hex_decode_str("abc", out, 8), -1);
	assert_int_equal(hex_decode_str("0g", out, 8), -1);
	assert_int_equal(hex_decode_str(" a", out, 8), -1);
	assert_int_equal(hex_decode_str("+a", out, 8), -1);
	assert_int_equal(hex_decode_str("0x", out, 8), -1);
	assert_int_equal(hex_decode_str("0001abff7e", out, 4), -1);
}

static void
test_hex_decode_strict(void **state)
{
	uint8_t out[4];

	(void) state;
	/* what sscanf("%2x") accepted: a sign, a space, a 0x prefix */
	assert_int_equal(hex_decode_str("+f", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str("-1", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str(" f", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str("0x12", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str("zz", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str("abc", out, sizeof(out)), -1);
	assert_int_equal(hex_decode_str(NULL, out, sizeof(out)), -1);
	/* too long for out */
	assert_int_equal(hex_decode_str("0011223344", out, sizeof(out)), -1);
	/* a length: only the first len characters count */
	assert_int_equal(hex_decode("abZZ", 2, out, sizeof(out)), 1);
	assert_int_equal(out[0], 0xab);
	/* exactly n bytes */
	assert_int_equal(hex_decode_exact("0102", out, 2), 0);
	assert_int_equal(hex_decode_exact("010203", out, 2), -1);
	assert_int_equal(hex_decode_exact("01", out, 2), -1);
	assert_int_equal(hex_decode_exact("01+2", out, 2), -1);
}

static void
test_io_pipe_and_eof(void **state)
{
	char    big[200000], back[200000];
	int     p[2];
	pid_t   pid;
	ssize_t n;

	(void) state;
	for (size_t i = 0; i < sizeof(big); i++) {
		big[i] = (char) (i * 7);
	}
	assert_int_equal(pipe(p), 0);
	/* more than a pipe holds: write_all must loop over short writes */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(write_all(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(p[1]);
	n = read_all(p[0], back, sizeof(back));
	assert_int_equal(n, (ssize_t) sizeof(big));
	assert_memory_equal(big, back, sizeof(big));
	/* end of file: 0, then nothing more */
	assert_int_equal(read_all(p[0], back, 10), 0);
	close(p[0]);

	/* a short file: the count, not an error */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_all(p[1], "abc", 3), 0);
	close(p[1]);
	assert_int_equal(read_all(p[0], back, 10), 3);
	assert_memory_equal(back, "abc", 3);
	close(p[0]);
	assert_int_equal(read_all(-1, back, 1), -1);
	assert_int_equal(errno, EBADF);
}

static void
test_io_socket_peer_gone_is_epipe(void **state)
{
	struct sigaction old, dfl = {.sa_handler = SIG_DFL};
	int              sv[2];

	(void) state;
	/* the default action would kill this process on SIGPIPE */
	assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(write_all(sv[0], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
	sigaction(SIGPIPE, &old, NULL);
}

static void
test_state_dir(void **state)
{
	struct paths p;
	char         d[PATH_LEN], tiny[16];
	const char  *u = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

	(void) state;
	assert_int_equal(paths_init(&p, "/tmp/r/"), 0);
	assert_string_equal(p.ephemeral, "/tmp/r/run/vtpm/ephemeral");
	assert_int_equal(paths_state_dir(&p, false, u, d, sizeof(d)), 0);
	assert_string_equal(d, "/tmp/r/persist/swtpm/tpm-state-"
	                       "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
	assert_int_equal(paths_state_dir(&p, true, u, d, sizeof(d)), 0);
	assert_string_equal(d, "/tmp/r/run/vtpm/ephemeral/tpm-state-"
	                       "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
	assert_int_equal(paths_state_dir(&p, false, u, tiny, sizeof(tiny)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durable_write),
	    cmocka_unit_test(test_read_file_limits),
	    cmocka_unit_test(test_path_join),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_mkdir_p),
	    cmocka_unit_test(test_remove_tree),
	    cmocka_unit_test(test_opt_int),
	    cmocka_unit_test(test_strfmt),
	    cmocka_unit_test(test_uuid_valid),
	    cmocka_unit_test(test_secmem),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_hex_decode_strict),
	    cmocka_unit_test(test_io_pipe_and_eof),
	    cmocka_unit_test(test_io_socket_peer_gone_is_epipe),
	    cmocka_unit_test(test_state_dir),
	};

	log_init(LOG_LVL_ERROR, 0);
	return cmocka_run_group_tests(tests, setup, teardown);
}
