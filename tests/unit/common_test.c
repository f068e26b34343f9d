/* common_test.c: the shared helpers in pkg/common: strict hex, whole-buffer
 * I/O, the state directory path, the bounded formatter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static void
test_hex_roundtrip(void **state)
{
	const uint8_t in[] = {0x00, 0x0f, 0xa5, 0xff};
	uint8_t       out[4];
	char          hex[9];

	(void) state;
	hex_encode(in, sizeof(in), hex, sizeof(hex));
	assert_string_equal(hex, "000fa5ff");
	assert_int_equal(hex_decode_str(hex, out, sizeof(out)), 4);
	assert_memory_equal(in, out, sizeof(in));
	/* either case decodes */
	assert_int_equal(hex_decode_str("A5Ff", out, sizeof(out)), 2);
	assert_int_equal(out[0], 0xa5);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(hex_decode_str("", out, sizeof(out)), 0);
}

static void
test_hex_encode_truncates_whole_bytes(void **state)
{
	const uint8_t in[] = {0x12, 0x34, 0x56};
	char          hex[6];

	(void) state;
	memset(hex, 'x', sizeof(hex));
	hex_encode(in, sizeof(in), hex, sizeof(hex)); /* room for 2 bytes */
	assert_string_equal(hex, "1234");
	hex_encode(in, sizeof(in), hex, 1);
	assert_string_equal(hex, "");
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

static void
test_strfmt_truncates(void **state)
{
	char b[6];

	(void) state;
	strfmt(b, sizeof(b), "%s-%d", "abc", 12345);
	assert_string_equal(b, "abc-1");
	strfmt(b, sizeof(b), "%d", 7);
	assert_string_equal(b, "7");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex_roundtrip),
	    cmocka_unit_test(test_hex_encode_truncates_whole_bytes),
	    cmocka_unit_test(test_hex_decode_strict),
	    cmocka_unit_test(test_io_pipe_and_eof),
	    cmocka_unit_test(test_io_socket_peer_gone_is_epipe),
	    cmocka_unit_test(test_state_dir),
	    cmocka_unit_test(test_strfmt_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
