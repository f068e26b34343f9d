/* sealer_test.c: the key broker's parts, called directly: HKDF against
 * known vectors, the PCR-set rules, return-code classes, and seal/unseal,
 * policy mismatch and shared releases against a real swtpm (started with
 * build/hwtpm.sh; those tests skip when swtpm is missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "pubsub.h"
#include "sealer.h"

#include <openssl/evp.h>
#include <tss2/tss2_tcti.h>

/* ---- HKDF ---- */

static void
unhex(const char *h, uint8_t *out, size_t n)
{
	assert_int_equal(hex_decode(h, 2 * n, out, n), (int) n);
}

static void
test_hkdf_rfc5869_case1(void **state)
{
	uint8_t ikm[22], salt[13], info[10], okm[42], want[42];

	(void) state;
	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++) {
		salt[i] = (uint8_t) i;
	}
	for (int i = 0; i < 10; i++) {
		info[i] = (uint8_t) (0xf0 + i);
	}
	/* RFC 5869 A.1 (also: openssl kdf -keylen 42 ... HKDF) */
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5"
	      "bf34007208d5b887185865",
	      want, sizeof(want));
	assert_int_equal(kdf_hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt),
	                                 info, sizeof(info), okm, sizeof(okm)),
	                 0);
	assert_memory_equal(okm, want, sizeof(want));
}

static void
test_kdf_vm_key_vector(void **state)
{
	uint8_t master[32], k1[32], k2[32], k3[32], want[32];

	(void) state;
	for (int i = 0; i < 32; i++) {
		master[i] = (uint8_t) i;
	}
	/* computed with: openssl kdf -keylen 32 -kdfopt digest:SHA256
	 *   -kdfopt hexkey:000102...1f
	 *   -kdfopt info:vtpm-state-v1123e4567-e89b-12d3-a456-426614174000
	 *   HKDF */
	unhex(
	    "8de640a5f9d73bec17057791cd772bf0865bc64bc29a18cb65617408971c8027",
	    want, sizeof(want));
	assert_int_equal(kdf_vm_key(master, 32,
	                            "123e4567-e89b-12d3-a456-426614174000", k1,
	                            32),
	                 0);
	assert_memory_equal(k1, want, 32);
	/* the same VM spelt in upper case gets the same key */
	assert_int_equal(kdf_vm_key(master, 32,
	                            "123E4567-E89B-12D3-A456-426614174000", k2,
	                            32),
	                 0);
	assert_memory_equal(k2, want, 32);
	assert_int_equal(kdf_vm_key(master, 32,
	                            "123e4567-e89b-12d3-a456-426614174001", k3,
	                            32),
	                 0);
	assert_memory_not_equal(k3, want, 32);
	assert_int_equal(kdf_vm_key(master, 32, "short", k3, 32), -1);
}

/* ---- PCR set ---- */

static void
test_pcrs_parse(void **state)
{
	uint32_t m;
	char     err[256], buf[PCRS_LEN];

	(void) state;
	assert_int_equal(pcrset_parse(SEAL_DEFAULT_PCRS, &m, err, sizeof(err)),
	                 0);
	assert_int_equal(m, 0x7fdf); /* 0-4, 6-14 */
	pcrset_format(m, buf, sizeof(buf));
	assert_string_equal(buf, "0,1,2,3,4,6,7,8,9,10,11,12,13,14");
	assert_int_equal(pcrset_parse(buf, &m, err, sizeof(err)), 0);
	assert_int_equal(m, 0x7fdf);
	assert_int_equal(pcrset_parse("0", &m, err, sizeof(err)), 0);
	assert_int_equal(m, 1);
	assert_int_equal(pcrset_parse("0,7,15", &m, err, sizeof(err)), 0);
	assert_int_equal(m, 0x8081);

	assert_int_equal(pcrset_parse("1,2,3", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must hold PCR 0"));
	assert_int_equal(pcrset_parse("0-5", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must not hold PCR 5"));
	assert_int_equal(pcrset_parse("0,1,1", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "PCR 1 listed twice"));
	assert_int_equal(pcrset_parse("0-3,2", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(pcrset_parse("0,16", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "out of 0-15"));
	assert_int_equal(pcrset_parse("0,23", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("0,", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("0,,1", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("0;1", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("4-2,0", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("-1,0", &m, err, sizeof(err)), -1);
	assert_int_equal(pcrset_parse("0-", &m, err, sizeof(err)), -1);
	assert_int_equal(m, 0);
}

static void
test_rc_classes(void **state)
{
	char buf[160];

	(void) state;
	assert_true(tpm_rc_retryable(TPM2_RC_RETRY));
	assert_true(tpm_rc_retryable(TPM2_RC_YIELDED));
	assert_true(tpm_rc_retryable(TPM2_RC_TESTING));
	assert_true(tpm_rc_retryable(TSS2_TCTI_RC_TRY_AGAIN));
	assert_false(tpm_rc_retryable(TPM2_RC_LOCKOUT));
	assert_false(tpm_rc_retryable(TSS2_RC_SUCCESS));
	/* Unseal in a policy session whose PCRs changed: 0x99d */
	assert_true(tpm_rc_is_policy(0x99d));
	assert_false(tpm_rc_is_policy(TPM2_RC_LOCKOUT));
	assert_true(tpm_rc_is_io(TSS2_TCTI_RC_IO_ERROR));
	assert_true(tpm_rc_is_io(TSS2_ESYS_RC_IO_ERROR));
	assert_false(tpm_rc_is_io(0x99d));
	tek_rc_str(TPM2_RC_LOCKOUT, buf, sizeof(buf));
	assert_non_null(strstr(buf, "0x921"));
	assert_non_null(strstr(buf, "lockout"));
}

/* ---- sealed blob file: decoded by the schema engine, strictly ---- */

#define H32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* A blob that passes every check the schema makes; "public" is not a
 * TPM2B_PUBLIC, so the first error after the schema names that field. */
static const char *const blob_ok =
    "{\"version\":1,\"srk\":\"0x81000001\",\"bank\":\"sha256\","
    "\"pcrs\":\"0,7\",\"branches\":[{\"pcrs\":\"0,7\",\"values\":{\"0\":"
    "\"" H32 "\",\"7\":\"" H32 "\"},\"digest\":\"" H32 "\"}],"
    "\"auth_policy\":\"" H32 "\",\"public\":\"00ff\",\"private\":\"0000\"}";

/* blob_ok with the first occurrence of from replaced by to */
static void
blob_write(const char *path, const char *from, const char *to)
{
	const char *at = strstr(blob_ok, from);
	FILE       *f = fopen(path, "w");

	assert_non_null(at);
	assert_non_null(f);
	fprintf(f, "%.*s%s%s", (int) (at - blob_ok), blob_ok, to,
	        at + strlen(from));
	fclose(f);
}

static void
blob_expect(const char *path, const char *from, const char *to, const char *why)
{
	struct seal_blob b;
	char             err[512];

	blob_write(path, from, to);
	memset(&b, 0xa5, sizeof(b));
	assert_int_equal(seal_blob_load(path, &b, err, sizeof(err)), -1);
	/* the error names the file, then the field and the reason */
	assert_memory_equal(err, path, strlen(path));
	if (strstr(err, why) == NULL) {
		fail_msg("\"%s\" does not say \"%s\"", err, why);
	}
	assert_int_equal(b.nbranches, 0); /* nothing half-decoded */
}

static void
test_blob_file_malformed(void **state)
{
	char  d[] = "/tmp/blob-test.XXXXXX", path[160], big[70000];
	FILE *f;

	(void) state;
	assert_non_null(mkdtemp(d));
	snprintf(path, sizeof(path), "%s/master.sealed.json", d);
	/* each row: blob_ok with one piece replaced, and what the error says;
	 * the first row changes nothing, so the schema accepts the layout and
	 * the TPM structure is what fails */
	static const struct {
		const char *from, *to, *why;
	} bad[] = {
	    {"\"version\"", "\"version\"", "field public: not a TPM2B_PUBLIC"},
	    {"\"digest\":\"" H32 "\"", "\"digest\":\"\"",
	     "field branches[0].digest: 0 hex digits, expected 2 to"},
	    {",\"digest\":\"" H32 "\"", "",
	     "missing required field branches[0].digest"},
	    {"\"version\":1", "\"version\":\"1\"",
	     "field version: expected a number"},
	    {"\"version\":1", "\"version\":2",
	     "field version: 2 is not an integer in [1, 1]"},
	    {"\"bank\":\"sha256\"", "\"bank\":\"sha1\"",
	     "field bank: unknown value \"sha1\""},
	    {"\"srk\":\"0x81000001\",", "", "missing required field srk"},
	    {"\"auth_policy\":\"" H32, "\"auth_policy\":\"zz",
	     "field auth_policy: not an even run of hex digits"},
	    {"\"public\":\"00ff\"", "\"public\":\"0ff\"",
	     "field public: not an even run of hex digits"},
	    /* sscanf("%2x") took "+f" as 0x0f */
	    {"\"7\":\"00", "\"7\":\"+f",
	     "field branches[0].values.7: not a hex digit"},
	    {"\"values\":{", "\"values\":{\"x\":1,",
	     "unknown field branches[0].values.x"},
	    {"\"version\"", "\"extra\":0,\"version\"", "unknown field extra"},
	    {"\"branches\":[{\"pcrs\":\"0,7\"", "\"branches\":[{\"pcrs\":7",
	     "field branches[0].pcrs: "
	     "expected a string"},
	    {",\"7\":\"" H32 "\"", "",
	     "field branches[0].values: value of PCR 7 missing"},
	    {"\"pcrs\":\"0,7\"", "\"pcrs\":\"0,16\"", "field pcrs: "},
	    {"\"branches\":[", "\"branches\":[{},{},",
	     "field branches: 3 elements, expected 1 to 2"},
	    {"\"branches\":[{\"pcrs\":\"0,7\",\"values\":{\"0\":"
	     "\"" H32 "\",\"7\":\"" H32 "\"},\"digest\":\"" H32 "\"}]",
	     "\"branches\":[]", "field branches: 0 elements"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		blob_expect(path, bad[i].from, bad[i].to, bad[i].why);
	}
	blob_expect(path, "{", "[", "not JSON");
	/* oversize: a field over its limit, a file over its limit */
	{
		char to[2200];

		memset(to, 'a', sizeof(to));
		memcpy(to, "\"public\":\"", 10);
		to[10 + 2 * 1025] = '"';
		to[10 + 2 * 1025 + 1] = '\0';
		blob_expect(
		    path, "\"public\":\"00ff\"", to,
		    "field public: 2050 hex digits, expected 2 to 2048");
	}
	f = fopen(path, "w");
	assert_non_null(f);
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fprintf(f, "%s%s", blob_ok, big);
	fclose(f);
	{
		struct seal_blob b;
		char             err[256];

		assert_int_equal(seal_blob_load(path, &b, err, sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "larger than 65536 bytes"));
	}
	unlink(path);
	rmdir(d);
}

/* tek_rc_str from many threads at once: each sees its own code's text,
 * never another thread's (Tss2_RC_Decode shares one static buffer). */
static const TSS2_RC rc_codes[] = {TPM2_RC_LOCKOUT, 0x99d,
                                   TSS2_TCTI_RC_IO_ERROR, TPM2_RC_RETRY};
static char          rc_want[4][160];

static void *
rc_worker(void *arg)
{
	size_t i = (size_t) (uintptr_t) arg;
	char   buf[160];

	for (int k = 0; k < 20000; k++) {
		tek_rc_str(rc_codes[i], buf, sizeof(buf));
		if (strcmp(buf, rc_want[i]) != 0) {
			return (void *) 1;
		}
	}
	return NULL;
}

static void
test_rc_str_threads(void **state)
{
	pthread_t th[4];
	void     *bad;

	(void) state;
	for (size_t i = 0; i < 4; i++) {
		tek_rc_str(rc_codes[i], rc_want[i], sizeof(rc_want[i]));
	}
	assert_string_not_equal(rc_want[0], rc_want[1]);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(pthread_create(&th[i], NULL, rc_worker,
		                                (void *) (uintptr_t) i),
		                 0);
	}
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_null(bad);
	}
}

/* TPM_RETRY: busy codes are retried with backoff, others are not. */
static int calls, busy_for;

static TSS2_RC
fake_cmd(TSS2_RC busy_rc, TSS2_RC final)
{
	return ++calls <= busy_for ? busy_rc : final;
}

static void
test_retry_backoff(void **state)
{
	TSS2_RC  rc;
	uint64_t t0;

	(void) state;
	calls = 0;
	busy_for = 2;
	TPM_RETRY(rc, fake_cmd(TPM2_RC_RETRY, TSS2_RC_SUCCESS));
	assert_int_equal(rc, TSS2_RC_SUCCESS);
	assert_int_equal(calls, 3);
	calls = 0;
	busy_for = 3;
	TPM_RETRY(rc, fake_cmd(TPM2_RC_YIELDED, 0x99d));
	assert_int_equal(rc, 0x99d);
	assert_int_equal(calls, 4);
	/* a policy failure is never retried */
	calls = 0;
	busy_for = 0;
	TPM_RETRY(rc, fake_cmd(TPM2_RC_RETRY, 0x99d));
	assert_int_equal(calls, 1);
	/* always busy: gives up after a bounded time with the busy rc */
	calls = 0;
	busy_for = 1000;
	t0 = now_ms();
	TPM_RETRY(rc, fake_cmd(TPM2_RC_TESTING, TSS2_RC_SUCCESS));
	assert_int_equal(rc, TPM2_RC_TESTING);
	assert_int_equal(calls, 9);
	assert_true(now_ms() - t0 >= 500);
}

/* ---- against a real swtpm ---- */

static char dir[128], tcti[96];
static int  port;

static bool
port_free(int p)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int                s = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_port = htons((uint16_t) p);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(s, (struct sockaddr *) &a, sizeof(a)) == 0;
	close(s);
	return ok;
}

static int
hw_setup(void **state)
{
	char cmd[512];

	(void) state;
	/* every file of the TPM tests lives in here (never under "") */
	snprintf(dir, sizeof(dir), "/tmp/sealer-test.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return -1;
	}
	/* tests/run.sh starts one simulated hardware TPM for the unit run
	 * and names it here; run alone, the test starts its own */
	const char *env = getenv("VTPM_TEST_TCTI");

	if (env != NULL && env[0] != '\0') {
		snprintf(tcti, sizeof(tcti), "%s", env);
		port = -1; /* not ours to stop */
		return 0;
	}
	if (access("build/hwtpm.sh", X_OK) != 0 ||
	    system("command -v swtpm >/dev/null") != 0) {
		return 0; /* the TPM tests fail with the reason */
	}
	srand((unsigned) getpid());
	for (int i = 0; i < 100; i++) {
		port = 20000 + rand() % 30000;
		if (port_free(port) && port_free(port + 1)) {
			break;
		}
	}
	snprintf(cmd, sizeof(cmd),
	         "build/hwtpm.sh start --dir %s/hw --port %d >/dev/null", dir,
	         port);
	if (system(cmd) != 0) {
		port = 0;
		return 0;
	}
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	return 0;
}

static int
hw_teardown(void **state)
{
	char cmd[512];

	(void) state;
	if (port > 0) {
		snprintf(cmd, sizeof(cmd),
		         "build/hwtpm.sh stop --dir %s/hw --port %d", dir,
		         port);
		(void) system(cmd);
	}
	if (dir[0]) {
		remove_tree(dir);
	}
	return 0;
}

#define NEED_HW()                                                              \
	do {                                                                   \
		if (port == 0 || dir[0] == '\0') {                             \
			fail_msg("no simulated hardware TPM: set "             \
			         "VTPM_TEST_TCTI or install swtpm and run "    \
			         "from the repository root");                  \
		}                                                              \
	} while (0)

static void
extend_pcr_with(struct tpm *t, int pcr, uint8_t byte)
{
	TPML_DIGEST_VALUES v = {.count = 1};

	v.digests[0].hashAlg = TPM2_ALG_SHA256;
	memset(v.digests[0].digest.sha256, byte, 32);
	assert_int_equal(Esys_PCR_Extend(t->ectx, ESYS_TR_PCR0 + (ESYS_TR) pcr,
	                                 ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                                 ESYS_TR_NONE, &v),
	                 0);
}

static void
extend_pcr(struct tpm *t, int pcr)
{
	extend_pcr_with(t, pcr, 0x42);
}

/* Two branches (current values OR predicted ones): either opens it, any
 * other value does not. The groundwork of planned updates. */
static void
test_policy_or_branch(void **state)
{
	struct tpm       t;
	struct seal_blob b, b2;
	uint8_t          master[32], got[32], cur[SEAL_PCR_MAX][32];
	uint8_t          pred[SEAL_PCR_MAX][32], ext[64];
	char             err[REASON_LEN], path[256];
	uint32_t         mask, changed = 0;
	unsigned int     n = 0;
	TSS2_RC          rc;

	(void) state;
	NEED_HW();
	assert_int_equal(tpm_open(&t, tcti, err, sizeof(err)), 0);
	assert_int_equal(
	    pcrset_parse(SEAL_DEFAULT_PCRS, &mask, err, sizeof(err)), 0);
	assert_int_equal(seal_pcr_read(&t, mask, cur, &rc, err, sizeof(err)),
	                 0);
	/* predicted: PCR 8 after one extend with 32 x 0x77 */
	memcpy(pred, cur, sizeof(pred));
	memcpy(ext, cur[8], 32);
	memset(ext + 32, 0x77, 32);
	EVP_Digest(ext, sizeof(ext), pred[8], &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		master[i] = (uint8_t) (0x5a ^ i);
	}
	assert_int_equal(seal_create_or(&t, mask, master,
	                                (const uint8_t(*)[32]) pred, &b, &rc,
	                                err, sizeof(err)),
	                 0);
	assert_int_equal(b.nbranches, 2);
	assert_memory_not_equal(b.auth_policy.buffer, b.branch[0].digest.buffer,
	                        32);
	snprintf(path, sizeof(path), "%s/or.json", dir);
	assert_int_equal(seal_blob_store(path, &b), 0);
	assert_int_equal(seal_blob_load(path, &b2, err, sizeof(err)), 0);
	assert_int_equal(b2.nbranches, 2);

	assert_int_equal(seal_unseal(&t, &b2, got, &rc, err, sizeof(err)), 0);
	assert_memory_equal(got, master, 32);
	extend_pcr_with(&t, 8, 0x77); /* the update happened as predicted */
	memset(got, 0, sizeof(got));
	assert_int_equal(seal_unseal(&t, &b2, got, &rc, err, sizeof(err)), 0);
	assert_memory_equal(got, master, 32);
	extend_pcr_with(&t, 8, 0x77); /* anything else: refused */
	assert_int_equal(seal_unseal(&t, &b2, got, &rc, err, sizeof(err)), -2);
	assert_non_null(strstr(err, "PolicyOR"));
	assert_int_equal(
	    seal_changed_pcrs(&t, &b2, &changed, &rc, err, sizeof(err)), 0);
	assert_int_equal(changed, 1u << 8);
	tpm_close(&t);
}

static void
test_seal_unseal_mismatch(void **state)
{
	struct tpm       t;
	struct seal_blob b, b2;
	uint8_t          master[32], got[32];
	char             err[REASON_LEN], path[256];
	uint32_t         mask, changed = 0;
	TSS2_RC          rc;

	(void) state;
	NEED_HW();
	assert_int_equal(tpm_open(&t, tcti, err, sizeof(err)), 0);
	assert_int_equal(seal_srk(&t, &rc, err, sizeof(err)), 0);
	/* a second lookup finds the persistent SRK and accepts it */
	(void) Esys_TR_Close(t.ectx, &t.srk);
	t.srk = ESYS_TR_NONE;
	assert_int_equal(seal_srk(&t, &rc, err, sizeof(err)), 0);

	assert_int_equal(pcrset_parse("0-4,6-14", &mask, err, sizeof(err)), 0);
	for (int i = 0; i < 32; i++) {
		master[i] = (uint8_t) (0xa0 ^ i);
	}
	assert_int_equal(
	    seal_create(&t, mask, master, &b, &rc, err, sizeof(err)), 0);
	assert_int_equal(seal_unseal(&t, &b, got, &rc, err, sizeof(err)), 0);
	assert_memory_equal(got, master, 32);

	/* the file form round-trips */
	snprintf(path, sizeof(path), "%s/blob.json", dir);
	assert_int_equal(seal_blob_store(path, &b), 0);
	assert_int_equal(seal_blob_load(path, &b2, err, sizeof(err)), 0);
	memset(got, 0, sizeof(got));
	assert_int_equal(seal_unseal(&t, &b2, got, &rc, err, sizeof(err)), 0);
	assert_memory_equal(got, master, 32);

	/* a vault PCR changes: the TPM refuses and we can name it */
	extend_pcr(&t, 7);
	assert_int_equal(seal_unseal(&t, &b2, got, &rc, err, sizeof(err)), -2);
	assert_true(tpm_rc_is_policy(rc));
	assert_int_equal(
	    seal_changed_pcrs(&t, &b2, &changed, &rc, err, sizeof(err)), 0);
	assert_int_equal(changed, 1u << 7);
	/* PCR 16 is not in the set: extending it changes nothing */
	tpm_close(&t);
}

/* Count places in this process's memory holding the 32 bytes whose XOR
 * with mask is xpat (the pattern itself never sits in memory in clear).
 * Freed heap counts too: ASan keeps freed chunks in quarantine unwiped. */
static int
memory_hits(const uint8_t *xpat, const uint8_t *mask)
{
	FILE   *maps = fopen("/proc/self/maps", "r");
	int     mem = open("/proc/self/mem", O_RDONLY), hits = 0;
	uint8_t buf[1 << 16];
	char    line[512];

	assert_non_null(maps);
	assert_true(mem >= 0);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char          perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || hi - lo > (256ul << 20) ||
		    strstr(line, "[vvar]") != NULL) {
			continue;
		}
		for (unsigned long a = lo; a < hi; a += sizeof(buf) - 32) {
			ssize_t n = pread(mem, buf, sizeof(buf), (off_t) a);
			for (ssize_t i = 0; i + 32 <= n; i++) {
				int k = 0;
				while (k < 32 &&
				       (buf[i + k] ^ mask[k]) == xpat[k]) {
					k++;
				}
				hits += k == 32;
			}
			if (n < (ssize_t) sizeof(buf)) {
				break;
			}
		}
	}
	fclose(maps);
	close(mem);
	explicit_bzero(buf, sizeof(buf));
	return hits;
}

/* Seal and unseal, wipe our copies: no copy of the master key is left
 * anywhere in the process (ESAPI's buffers, OpenSSL's, the heap). */
static void
test_no_master_left(void **state)
{
	struct tpm       t;
	struct seal_blob b;
	uint8_t         *master = secmem_alloc(32), *got = secmem_alloc(32);
	uint8_t          mask[32], xpat[32];
	char             err[REASON_LEN];
	uint32_t         mask_pcrs;
	TSS2_RC          rc;

	(void) state;
	NEED_HW();
	assert_int_equal(pcrset_parse("0-4", &mask_pcrs, err, sizeof(err)), 0);
	assert_int_equal(getentropy(master, 32), 0);
	assert_int_equal(getentropy(mask, 32), 0);
	for (int i = 0; i < 32; i++) {
		mask[i] |= 1; /* never xpat == pattern */
		xpat[i] = master[i] ^ mask[i];
	}
	assert_int_equal(tpm_open(&t, tcti, err, sizeof(err)), 0);
	assert_int_equal(
	    seal_create(&t, mask_pcrs, master, &b, &rc, err, sizeof(err)), 0);
	assert_int_equal(seal_unseal(&t, &b, got, &rc, err, sizeof(err)), 0);
	assert_memory_equal(got, master, 32);
	/* the check can fail: while we hold it, it is found */
	assert_true(memory_hits(xpat, mask) >= 2);
	secmem_free(master, 32);
	secmem_free(got, 32);
	assert_int_equal(memory_hits(xpat, mask), 0);
	tpm_close(&t);
	assert_int_equal(memory_hits(xpat, mask), 0);
}

static void
test_broker_no_tpm(void **state)
{
	struct broker          *b;
	struct broker_cfg       cfg;
	struct key_release_rep  rep;
	struct keybroker_status st;
	char                    err[512], root[160];

	(void) state;
	snprintf(root, sizeof(root), "/tmp/sealer-none.XXXXXX");
	assert_non_null(mkdtemp(root));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.rundir, sizeof(cfg.rundir), "%s", root);
	snprintf(cfg.vault, sizeof(cfg.vault), "%s", root);
	snprintf(cfg.tcti, sizeof(cfg.tcti), "none");
	cfg.nworkers = 2;
	assert_int_equal(
	    pcrset_parse(SEAL_DEFAULT_PCRS, &cfg.pcrs, err, sizeof(err)), 0);
	assert_int_equal(broker_open(&b, &cfg, err, sizeof(err)), 0);
	assert_int_equal(
	    broker_release(b, "123e4567-e89b-12d3-a456-426614174000", 0, &rep),
	    0);
	assert_int_equal(rep.status, KEY_NO_HW_TPM);
	broker_status(b, &st);
	assert_int_equal(st.state, KB_NO_HW_TPM);
	/* another uid is refused before anything else */
	assert_int_equal(broker_release(b,
	                                "123e4567-e89b-12d3-a456-426614174000",
	                                1234, &rep),
	                 0);
	assert_int_equal(rep.status, KEY_DENIED);
	broker_close(b);
	remove_tree(root);
}

struct rel_arg {
	struct broker *b;
	int            i;
	int            status;
	uint8_t        key[32];
};

static void *
rel_main(void *arg)
{
	struct rel_arg        *a = arg;
	struct key_release_rep rep;
	char                   u[UUID_LEN];

	snprintf(u, sizeof(u), "00000000-0000-0000-0000-%012d", a->i % 2);
	broker_release(a->b, u, 0, &rep);
	a->status = rep.status;
	memcpy(a->key, rep.key, 32);
	explicit_bzero(&rep, sizeof(rep));
	return NULL;
}

static void
test_broker_release_shared(void **state)
{
	struct broker         *b;
	struct broker_cfg      cfg;
	struct rel_arg         a[16];
	pthread_t              th[16];
	struct key_release_rep r1, r2;
	char                   err[512], root[160];
	uint64_t               before;

	(void) state;
	NEED_HW();
	snprintf(root, sizeof(root), "%s/root", dir);
	assert_int_equal(mkdir_p(root, 0700), 0);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.rundir, sizeof(cfg.rundir), "%s", root);
	snprintf(cfg.vault, sizeof(cfg.vault), "%s", root);
	snprintf(cfg.tcti, sizeof(cfg.tcti), "%s", tcti);
	cfg.nworkers = 2;
	/* PCR 7 was extended by the previous test: seal to a set without
	 * it would still be fine, but the fresh seal takes current values */
	assert_int_equal(
	    pcrset_parse(SEAL_DEFAULT_PCRS, &cfg.pcrs, err, sizeof(err)), 0);
	assert_int_equal(broker_open(&b, &cfg, err, sizeof(err)), 0);
	assert_int_equal(
	    broker_release(b, "123e4567-e89b-12d3-a456-426614174000", 0, &r1),
	    0);
	assert_int_equal(r1.status, KEY_OK);
	assert_int_equal(
	    broker_release(b, "123e4567-e89b-12d3-a456-426614174000", 0, &r2),
	    0);
	assert_memory_equal(r1.key, r2.key, 32);
	assert_int_equal(
	    broker_release(b, "123e4567-e89b-12d3-a456-426614174001", 0, &r2),
	    0);
	assert_memory_not_equal(r1.key, r2.key, 32);

	before = broker_unseals(b);
	for (int i = 0; i < 16; i++) {
		a[i] = (struct rel_arg){.b = b, .i = i};
		assert_int_equal(pthread_create(&th[i], NULL, rel_main, &a[i]),
		                 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].status, KEY_OK);
		assert_memory_equal(a[i].key, a[i % 2].key, 32);
	}
	assert_memory_not_equal(a[0].key, a[1].key, 32);
	/* 16 concurrent releases shared unseals */
	assert_true(broker_unseals(b) - before < 16);
	broker_close(b);
	explicit_bzero(&r1, sizeof(r1));
	explicit_bzero(&r2, sizeof(r2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hkdf_rfc5869_case1),
	    cmocka_unit_test(test_kdf_vm_key_vector),
	    cmocka_unit_test(test_pcrs_parse),
	    cmocka_unit_test(test_rc_classes),
	    cmocka_unit_test(test_rc_str_threads),
	    cmocka_unit_test(test_blob_file_malformed),
	    cmocka_unit_test(test_retry_backoff),
	    cmocka_unit_test(test_broker_no_tpm),
	    cmocka_unit_test(test_seal_unseal_mismatch),
	    cmocka_unit_test(test_no_master_left),
	    cmocka_unit_test(test_policy_or_branch),
	    cmocka_unit_test(test_broker_release_shared),
	};

	setenv("TSS2_LOG", "all+none", 0);
	log_init(LOG_LVL_WARN, 0);
	return cmocka_run_group_tests(tests, hw_setup, hw_teardown);
}
