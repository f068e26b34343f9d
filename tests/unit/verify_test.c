/* verify_test.c: the verifier's parts, called directly: MakeCredential
 * unwrapped again in software (RSA-OAEP seed, KDFa, HMAC, AES-CFB, as a
 * TPM's ActivateCredential does), the registry on both backends (its
 * operations, 16 processes racing, migrations, the attestation ops), the
 * AK check, quote checks against a software-signed TPMS_ATTEST, the EK
 * templates L-1/L-2, and a registry of the original schema upgraded on
 * open. The real-TPM round trips are in tests/integration/attest_ak.sh
 * and attest_maker.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

#include "../tools/soft_tpm.h"

/* An RSA key and its TPM2B_PUBLIC in the EK template. */
static EVP_PKEY *
ek_like(TPM2B_PUBLIC *pub)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	assert_non_null(k);
	assert_int_equal(soft_pub(k, true, pub), 0);
	return k;
}

static EVP_PKEY    *ek_key;
static TPM2B_PUBLIC ek_pub;

static int
setup(void **state)
{
	(void) state;
	ek_key = ek_like(&ek_pub);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	EVP_PKEY_free(ek_key);
	return 0;
}

static void
test_make_credential_roundtrip(void **state)
{
	TPM2B_NAME             name = {.size = 34};
	TPM2B_ID_OBJECT        blob;
	TPM2B_ENCRYPTED_SECRET sec;
	uint8_t                cred[32], got[64];
	size_t                 glen = 0;
	char                   err[256];

	(void) state;
	memset(name.name, 0x5a, sizeof(name.name));
	name.name[0] = 0;
	name.name[1] = 0x0b;
	for (int i = 0; i < 32; i++) {
		cred[i] = (uint8_t) i;
	}
	assert_int_equal(vfy_make_credential(&ek_pub, &name, cred, 32, &blob,
	                                     &sec, err, sizeof(err)),
	                 0);
	assert_int_equal(sec.size, 256);
	assert_int_equal(blob.size, 2 + 32 + 2 + 32);
	assert_int_equal(soft_activate(ek_key, &name, &blob, &sec, got, &glen),
	                 0);
	assert_int_equal(glen, 32);
	assert_memory_equal(got, cred, 32);
	/* for another object name the HMAC does not hold */
	name.name[5] ^= 1;
	assert_int_equal(soft_activate(ek_key, &name, &blob, &sec, got, &glen),
	                 -1);
}

static void
test_make_credential_refuses(void **state)
{
	TPM2B_PUBLIC           bad = ek_pub;
	TPM2B_NAME             name = {.size = 34};
	TPM2B_ID_OBJECT        blob;
	TPM2B_ENCRYPTED_SECRET sec;
	uint8_t                cred[32] = {1};
	char                   err[256] = "";

	(void) state;
	bad.publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 256;
	assert_int_equal(vfy_make_credential(&bad, &name, cred, 32, &blob, &sec,
	                                     err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "AES-128-CFB"));
	assert_int_equal(vfy_make_credential(&ek_pub, &name, cred, 0, &blob,
	                                     &sec, err, sizeof(err)),
	                 -1);
}

static void
test_kdfa_shape(void **state)
{
	uint8_t key[32] = {7}, a[64], b[64], c[16];

	(void) state;
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, a, 512),
	                 0);
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, b, 512),
	                 0);
	assert_memory_equal(a, b, 64); /* deterministic, two HMAC blocks */
	assert_int_equal(
	    vfy_kdfa(key, 32, "INTEGRITY", NULL, 0, NULL, 0, b, 512), 0);
	assert_memory_not_equal(a, b, 64);
	/* the bit count is an input: a 128-bit key is not a prefix */
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, c, 128),
	                 0);
	assert_memory_not_equal(a, c, 16);
}

static void
test_is_ak_and_templates(void **state)
{
	TPM2B_PUBLIC ak = ek_pub;

	(void) state;
	assert_true(tek_is_ek_template(&ek_pub));
	assert_false(vfy_is_ak(&ek_pub)); /* a decrypt key */
	ak.publicArea.objectAttributes =
	    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	assert_true(vfy_is_ak(&ak));
	assert_false(tek_is_ek_template(&ak));
	ak.publicArea.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM;
	assert_false(vfy_is_ak(&ak)); /* exportable: no AK */
}

static void
test_pub_hex_and_name(void **state)
{
	char         hex[ATTEST_PUB_LEN];
	TPM2B_PUBLIC back;
	TPM2B_NAME   n1, n2;

	(void) state;
	assert_int_equal(tek_pub_to_hex(&ek_pub, hex, sizeof(hex)), 0);
	assert_int_equal(tek_pub_from_hex(hex, &back), 0);
	assert_int_equal(tek_pub_name(&ek_pub, &n1), 0);
	assert_int_equal(tek_pub_name(&back, &n2), 0);
	assert_int_equal(n1.size, 34);
	assert_memory_equal(n1.name, n2.name, 34);
	hex[10] = 'x';
	assert_int_equal(tek_pub_from_hex(hex, &back), -1);
	assert_int_equal(tek_pub_from_hex("0102", &back), -1);
}

/* ---- the registry, on each backend ----
 * SQLite in a temporary file always; PostgreSQL when VFY_TEST_PG names an
 * empty database (tests/integration/verify_pg.sh starts a server and runs
 * this binary with it). */

struct rowcount {
	int  n;
	char last[ATTEST_ID_LEN];
};

static void
count_dev(void *arg, const struct vfy_device *d)
{
	struct rowcount *c = arg;

	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", d->state);
}

static void
count_bind(void *arg, const struct vfy_binding *b)
{
	struct rowcount *c = arg;

	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", b->device);
}

static struct vfy_alert last_alert;
static int              n_alerts;

/* counts the alerts whose EK starts with arg (NULL: all) */
static void
count_alert(void *arg, const struct vfy_alert *a)
{
	if (arg != NULL && strncmp(a->ek_fp, arg, strlen(arg)) != 0) {
		return;
	}
	last_alert = *a;
	n_alerts++;
}

static void
count_move(void *arg, const struct vfy_move *m)
{
	struct rowcount *c = arg;

	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", m->by);
}

static char sq_path[64];

/* the DSN of the backend under test: 0 SQLite (a fresh file), 1 PostgreSQL
 * (skips the test when no server was given) */
static const char *
dsn_for(int backend)
{
	const char *pg = getenv("VFY_TEST_PG");
	int         fd;

	if (backend == 1) {
		if (pg == NULL || pg[0] == '\0') {
			skip();
		}
		return pg;
	}
	snprintf(sq_path, sizeof(sq_path), "/tmp/verify_test.XXXXXX");
	fd = mkstemp(sq_path);
	assert_true(fd >= 0);
	close(fd);
	return sq_path;
}

static void
sq_cleanup(int backend)
{
	char p[100];

	if (backend != 0) {
		return;
	}
	unlink(sq_path);
	snprintf(p, sizeof(p), "%s-wal", sq_path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", sq_path);
	unlink(p);
}

/* an active device id (prefix: distinct per test on a shared database) */
static void
enrolled(struct registry *r, const char *id)
{
	struct vfy_device d;
	char              err[256];

	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", id);
	snprintf(d.ek_pub, sizeof(d.ek_pub), "00");
	snprintf(d.ak_pub, sizeof(d.ak_pub), "11");
	snprintf(d.secret_hash, sizeof(d.secret_hash), "h-%s", id);
	assert_int_equal(r->ops->challenge(r->h, &d, err, sizeof(err)), 0);
	assert_int_equal(
	    r->ops->activate(r->h, id, d.secret_hash, "cert", err, sizeof(err)),
	    0);
}

static void
registry_ops_on(int backend)
{
	const char        *dsn = dsn_for(backend);
	struct registry    r;
	struct vfy_device  d, g;
	struct vfy_verdict v;
	struct vfy_alert   a;
	struct vfy_filter  all = {0}, f;
	struct rowcount    rc;
	char               err[256];
	int64_t            id;

	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), 0);
	assert_string_equal(r.ops->name, backend ? "postgresql" : "sqlite");
	assert_int_equal(r.ops->schema_version(r.h, err, sizeof(err)),
	                 VFY_SCHEMA);
	/* a challenge, a wrong answer, the right one, a replay */
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "b-dev-a");
	snprintf(d.ek_pub, sizeof(d.ek_pub), "00");
	snprintf(d.ak_pub, sizeof(d.ak_pub), "11");
	snprintf(d.secret_hash, sizeof(d.secret_hash), "s1");
	assert_int_equal(r.ops->challenge(r.h, &d, err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->device_get(r.h, "b-dev-a", &g, err, sizeof(err)), 1);
	assert_string_equal(g.state, "pending");
	assert_string_equal(g.secret_hash, "s1");
	assert_int_equal(
	    r.ops->device_get(r.h, "b-dev-x", &g, err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->activate(r.h, "b-dev-a", "s2", "cert", err, sizeof(err)),
	    VFY_NO);
	assert_int_equal(
	    r.ops->activate(r.h, "b-dev-a", "s1", "cert-a", err, sizeof(err)),
	    0);
	assert_int_equal(
	    r.ops->activate(r.h, "b-dev-a", "s1", "cert-a", err, sizeof(err)),
	    VFY_NO);
	assert_int_equal(
	    r.ops->device_get(r.h, "b-dev-a", &g, err, sizeof(err)), 1);
	assert_string_equal(g.state, "active");
	assert_string_equal(g.ak_cert, "cert-a");
	assert_string_equal(g.secret_hash, "");
	enrolled(&r, "b-dev-b");
	enrolled(&r, "b-dev-c");

	/* first sighting, the same again, another EK elsewhere: no clone */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek1", "b-dev-a", "vm1", &v, err, sizeof(err)),
	    0);
	assert_false(v.clone);
	assert_int_equal(
	    r.ops->report(r.h, "b-ek1", "b-dev-a", "vm1", &v, err, sizeof(err)),
	    0);
	assert_false(v.clone);
	assert_int_equal(
	    r.ops->report(r.h, "b-ek2", "b-dev-b", "vm2", &v, err, sizeof(err)),
	    0);
	assert_false(v.clone);
	/* ek1 behind dev-b: clone naming dev-a, one new alert */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek1", "b-dev-b", "vm1", &v, err, sizeof(err)),
	    0);
	assert_true(v.clone);
	assert_true(v.alert_new);
	assert_string_equal(v.other, "b-dev-a");
	id = v.alert_id;
	assert_true(id > 0);
	/* dev-b again and dev-a again: still a clone, the same alert */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek1", "b-dev-b", "vm1", &v, err, sizeof(err)),
	    0);
	assert_true(v.clone && !v.alert_new && v.alert_id == id);
	assert_int_equal(
	    r.ops->report(r.h, "b-ek1", "b-dev-a", "vm1", &v, err, sizeof(err)),
	    0);
	assert_true(v.clone && !v.alert_new && v.alert_id == id);
	assert_string_equal(v.other, "b-dev-b");
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, "b-", err, sizeof(err)), 0);
	assert_int_equal(n_alerts, 1);
	assert_string_equal(last_alert.first, "b-dev-a");
	assert_string_equal(last_alert.second, "b-dev-b");
	assert_string_equal(last_alert.vm, "vm1");
	assert_int_equal(last_alert.acked_at, 0);

	/* ack: once, then "already", unknown ids */
	assert_int_equal(r.ops->ack(r.h, id, "alice", &a, err, sizeof(err)), 0);
	assert_string_equal(a.acked_by, "alice");
	assert_int_equal(r.ops->ack(r.h, id, "bob", &a, err, sizeof(err)),
	                 VFY_NO_DEV);
	assert_string_equal(a.acked_by, "alice");
	assert_int_equal(
	    r.ops->ack(r.h, id + 1000, "bob", &a, err, sizeof(err)), VFY_NO);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, "b-", err, sizeof(err)), 0);
	assert_string_equal(last_alert.acked_by, "alice");
	assert_true(last_alert.acked_at > 0);

	/* move: ek2 from dev-b to dev-c: one binding, on dev-c, recorded */
	assert_int_equal(
	    r.ops->move(r.h, "b-ek2", "b-dev-c", "carol", err, sizeof(err)), 0);
	f = (struct vfy_filter){.ek_fp = "b-ek2"};
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(
	    r.ops->bindings(r.h, &f, count_bind, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.n, 1);
	assert_string_equal(rc.last, "b-dev-c");
	assert_int_equal(
	    r.ops->report(r.h, "b-ek2", "b-dev-c", "vm2", &v, err, sizeof(err)),
	    0);
	assert_false(v.clone); /* the planned migration raised nothing */
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(
	    r.ops->moves(r.h, &f, count_move, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.n, 1);
	assert_string_equal(rc.last, "carol");
	/* the old device reporting it afterwards: that is a clone */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek2", "b-dev-b", "vm2", &v, err, sizeof(err)),
	    0);
	assert_true(v.clone && v.alert_new);
	assert_string_equal(v.other, "b-dev-c");
	assert_int_equal(
	    r.ops->move(r.h, "b-ek-none", "b-dev-c", "carol", err, sizeof(err)),
	    VFY_NO);
	assert_int_equal(
	    r.ops->move(r.h, "b-ek2", "b-dev-none", "carol", err, sizeof(err)),
	    VFY_NO_DEV);

	/* revoke dev-a: device and bindings revoked, no new challenge, its
	 * bindings no longer make anyone a clone */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek3", "b-dev-a", "vm3", &v, err, sizeof(err)),
	    0);
	assert_int_equal(
	    r.ops->revoke(r.h, "b-dev-a", "dave", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->revoke(r.h, "b-dev-a", "dave", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->revoke(r.h, "b-dev-none", "dave", err, sizeof(err)), VFY_NO);
	assert_int_equal(
	    r.ops->device_get(r.h, "b-dev-a", &g, err, sizeof(err)), 1);
	assert_string_equal(g.state, "revoked");
	assert_string_equal(g.revoked_by, "dave");
	assert_int_equal(r.ops->challenge(r.h, &d, err, sizeof(err)), VFY_NO);
	f = (struct vfy_filter){.device = "b-dev-a", .state = "active"};
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(
	    r.ops->bindings(r.h, &f, count_bind, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.n, 0);
	f.state = "revoked";
	assert_int_equal(
	    r.ops->bindings(r.h, &f, count_bind, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.n, 2); /* ek1 and ek3 */
	assert_int_equal(
	    r.ops->report(r.h, "b-ek3", "b-dev-c", "vm3", &v, err, sizeof(err)),
	    0);
	assert_false(v.clone);
	f = (struct vfy_filter){.state = "revoked"};
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(
	    r.ops->devices(r.h, &f, count_dev, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.n, 1);
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(
	    r.ops->devices(r.h, &all, count_dev, &rc, err, sizeof(err)), 0);
	assert_true(rc.n >= 3);
	vfy_registry_close(&r);

	/* persistent: a reopen sees the same */
	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), 0);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, NULL, err, sizeof(err)), 0);
	assert_true(n_alerts >= 2);
	vfy_registry_close(&r);
	sq_cleanup(backend);
}

static void
test_registry_sqlite(void **state)
{
	(void) state;
	registry_ops_on(0);
}

static void
test_registry_pg(void **state)
{
	(void) state;
	registry_ops_on(1);
}

#define RACERS 16

/* Fork RACERS processes, each with its own registry connection; they
 * start together (one byte each through a pipe) and run fn(r, i); the
 * exit codes are counted into got[0..3] (fn returns 0..3, 9 = error). */
static void
race(const char *dsn, int (*fn)(struct registry *r, int i), int got[4])
{
	int   go[2], ready[2];
	pid_t pids[RACERS];
	char  b = 0;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct registry r;
			char            err[256];
			int             rc = 9;

			close(go[1]);
			if (vfy_registry_open(&r, dsn, err, sizeof(err)) == 0) {
				(void) !write(ready[1], &b, 1);
				if (read(go[0], &b, 1) == 1) {
					rc = fn(&r, i);
				}
				vfy_registry_close(&r);
			} else {
				fprintf(stderr, "racer %d: %s\n", i, err);
				(void) !write(ready[1], &b, 1);
			}
			_exit(rc);
		}
	}
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(read(ready[0], &b, 1), 1);
	}
	/* all connected: release them at once */
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(write(go[1], &b, 1), 1);
	}
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	memset(got, 0, 4 * sizeof(int));
	for (int i = 0; i < RACERS; i++) {
		int st = 0;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_true(WEXITSTATUS(st) < 4); /* no racer failed */
		got[WEXITSTATUS(st)]++;
	}
}

/* 0 no clone, 1 clone with a new alert, 2 clone, alert known */
static int
report_rc(struct registry *r, const char *ek, const char *dev)
{
	struct vfy_verdict v;
	char               err[256];

	if (r->ops->report(r->h, ek, dev, "vm-r", &v, err, sizeof(err)) < 0) {
		fprintf(stderr, "report: %s\n", err);
		return 9;
	}
	return !v.clone ? 0 : v.alert_new ? 1 : 2;
}

static int
racer_same_clone(struct registry *r, int i)
{
	(void) i;
	return report_rc(r, "r-ek1", "r-dev-b");
}

static int
racer_first_sightings(struct registry *r, int i)
{
	return report_rc(r, "r-ek2", i % 2 ? "r-dev-b" : "r-dev-a");
}

static int
racer_activate(struct registry *r, int i)
{
	char err[256];
	int  n;

	(void) i;
	n = r->ops->activate(r->h, "r-dev-c", "h-race", "cert", err,
	                     sizeof(err));
	if (n < 0) {
		fprintf(stderr, "activate: %s\n", err);
	}
	return n == 0 ? 1 : n == VFY_NO ? 0 : 9;
}

static void
registry_races_on(int backend)
{
	const char        *dsn = dsn_for(backend);
	struct registry    r;
	struct vfy_device  d;
	struct vfy_verdict v;
	char               err[256];
	int                got[4];

	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), 0);
	enrolled(&r, "r-dev-a");
	enrolled(&r, "r-dev-b");
	/* 16 verifiers report the same clone at once: one alert */
	assert_int_equal(r.ops->report(r.h, "r-ek1", "r-dev-a", "vm-r", &v, err,
	                               sizeof(err)),
	                 0);
	race(dsn, racer_same_clone, got);
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[2], RACERS - 1);
	/* an EK first seen behind two devices at the same instant: one of
	 * the two first sightings wins, the other side sees a clone; one
	 * alert */
	race(dsn, racer_first_sightings, got);
	assert_int_equal(got[1], 1);
	assert_true(got[0] >= 1);
	assert_int_equal(got[0] + got[1] + got[2], RACERS);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, "r-", err, sizeof(err)), 0);
	assert_int_equal(n_alerts, 2);
	/* 16 activations with the same answer: one success */
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "r-dev-c");
	snprintf(d.secret_hash, sizeof(d.secret_hash), "h-race");
	assert_int_equal(r.ops->challenge(r.h, &d, err, sizeof(err)), 0);
	race(dsn, racer_activate, got);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[0], RACERS - 1);
	vfy_registry_close(&r);
	sq_cleanup(backend);
}

static void
test_registry_races_sqlite(void **state)
{
	(void) state;
	registry_races_on(0);
}

static void
test_registry_races_pg(void **state)
{
	(void) state;
	registry_races_on(1);
}

static int
racer_nonce(struct registry *r, int i)
{
	char err[256];
	int  n;

	(void) i;
	n = r->ops->nonce_take(r->h, "q-dev", "q-race", err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "nonce_take: %s\n", err);
	}
	return n == 1 ? 1 : n == 2 ? 0 : 9;
}

/* schema 3: quote nonces (once, for their device, one winner of 16),
 * reference PCRs replaced as a whole, hardware EK certificates */
static void
registry_attest_on(int backend)
{
	const char     *dsn = dsn_for(backend);
	struct registry r;
	uint8_t         v[16][32], g[16][32];
	uint32_t        mask;
	char            err[256], cert[64], tr[16];
	int             got[4];

	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_add(r.h, "q-dev-a", "q-n1", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "q-dev-b", "q-n1", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "q-dev-a", "q-n2", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "q-dev-a", "q-n1", err, sizeof(err)), 1);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "q-dev-a", "q-n1", err, sizeof(err)), 2);
	assert_int_equal(
	    r.ops->nonce_add(r.h, "q-dev", "q-race", err, sizeof(err)), 0);
	race(dsn, racer_nonce, got);
	assert_int_equal(got[1], 1);
	assert_int_equal(got[0], RACERS - 1);
	assert_int_equal(
	    r.ops->ref_get(r.h, "q-dev-a", &mask, g, err, sizeof(err)), 0);
	memset(v, 0x11, sizeof(v));
	assert_int_equal(r.ops->ref_put(r.h, "q-dev-a", 0x3,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	v[4][0] = 0x22;
	assert_int_equal(r.ops->ref_put(r.h, "q-dev-a", 0x10,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->ref_get(r.h, "q-dev-a", &mask, g, err, sizeof(err)), 1);
	assert_int_equal(mask, 0x10);
	assert_memory_equal(g[4], v[4], 32);
	assert_int_equal(r.ops->hw_ek_get(r.h, "q-dev-a", cert, sizeof(cert),
	                                  tr, sizeof(tr), err, sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->hw_ek_put(r.h, "q-dev-a", "PEM", "tofu", err, sizeof(err)),
	    0);
	assert_int_equal(
	    r.ops->hw_ek_put(r.h, "q-dev-a", "PEM2", "maker", err, sizeof(err)),
	    0);
	assert_int_equal(r.ops->hw_ek_get(r.h, "q-dev-a", cert, sizeof(cert),
	                                  tr, sizeof(tr), err, sizeof(err)),
	                 1);
	assert_string_equal(cert, "PEM2");
	assert_string_equal(tr, "maker");
	vfy_registry_close(&r);
	sq_cleanup(backend);
}

static void
test_registry_attest_sqlite(void **state)
{
	(void) state;
	registry_attest_on(0);
}

static void
test_registry_attest_pg(void **state)
{
	(void) state;
	registry_attest_on(1);
}

/* A SQLite file of the schema before versions were recorded (1) with the
 * duplicate alerts it used to collect: migrated to VFY_SCHEMA, one alert
 * per pair left; a schema newer than this binary is refused. */
static void
test_registry_migration(void **state)
{
	const char     *dsn = dsn_for(0);
	struct registry r;
	sqlite3        *db;
	char            err[256];

	(void) state;
	assert_int_equal(sqlite3_open(dsn, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(
	        db,
	        "CREATE TABLE devices(id TEXT PRIMARY KEY, ek_pub TEXT NOT "
	        "NULL, ak_pub TEXT NOT NULL, state TEXT NOT NULL, secret_hash "
	        "TEXT, ak_cert TEXT, updated INTEGER NOT NULL);"
	        "CREATE TABLE bindings(ek_fp TEXT NOT NULL, device TEXT NOT "
	        "NULL, vm TEXT NOT NULL, first_seen INTEGER NOT NULL, "
	        "last_seen INTEGER NOT NULL, PRIMARY KEY(ek_fp, device));"
	        "CREATE TABLE alerts(ek_fp TEXT NOT NULL, first_device TEXT "
	        "NOT NULL, second_device TEXT NOT NULL, vm TEXT NOT NULL, at "
	        "INTEGER NOT NULL);"
	        "INSERT INTO bindings VALUES('ek', 'a', 'vm', 1, 1);"
	        "INSERT INTO bindings VALUES('ek', 'b', 'vm', 2, 2);"
	        "INSERT INTO alerts VALUES('ek', 'a', 'b', 'vm', 2);"
	        "INSERT INTO alerts VALUES('ek', 'b', 'a', 'vm', 3);"
	        "INSERT INTO alerts VALUES('ek', 'a', 'b', 'vm', 4);",
	        NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), 0);
	assert_int_equal(r.ops->schema_version(r.h, err, sizeof(err)),
	                 VFY_SCHEMA);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, NULL, err, sizeof(err)), 0);
	assert_int_equal(n_alerts, 1);
	assert_int_equal(last_alert.at, 2); /* the first one kept */
	vfy_registry_close(&r);
	assert_int_equal(sqlite3_open(dsn, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "INSERT INTO schema_version VALUES(99, 0)", NULL,
	                 NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(vfy_registry_open(&r, dsn, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "schema version 99 is newer"));
	assert_non_null(strstr(err, dsn));
	assert_int_equal(vfy_registry_open(&r, "mysql://x/y", err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "unknown scheme"));
	sq_cleanup(0);
}

/* ---- quotes ---- */

/* A TPMS_ATTEST quote over mask with values and nonce, signed
 * RSASSA-SHA256 by key (as the TPM's AK does). */
static void
make_quote(EVP_PKEY *key, const uint8_t *nonce, size_t nlen, uint32_t mask,
           const uint8_t values[16][32], uint8_t *att, size_t *alen,
           uint8_t *sig, size_t *slen)
{
	TPMS_ATTEST a;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t     cat[16 * 32];
	size_t      n = 0, off = 0;

	memset(&a, 0, sizeof(a));
	a.magic = TPM2_GENERATED_VALUE;
	a.type = TPM2_ST_ATTEST_QUOTE;
	a.qualifiedSigner.size = 34;
	a.extraData.size = (UINT16) nlen;
	memcpy(a.extraData.buffer, nonce, nlen);
	a.clockInfo.clock = 12345;
	a.clockInfo.resetCount = 3;
	a.clockInfo.safe = 1;
	a.attested.quote.pcrSelect.count = 1;
	a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < 3; i++) {
		a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[i] =
		    (mask >> (8 * i)) & 0xff;
	}
	for (int i = 0; i < 16; i++) {
		if (mask & (1u << i)) {
			memcpy(cat + n, values[i], 32);
			n += 32;
		}
	}
	a.attested.quote.pcrDigest.size = 32;
	SHA256(cat, n, a.attested.quote.pcrDigest.buffer);
	assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, att, *alen, &off), 0);
	*alen = off;
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
	                 1);
	assert_int_equal(EVP_DigestSign(md, sig, slen, att, *alen), 1);
	EVP_MD_CTX_free(md);
}

/* The AK's public area for key (any RSA key will do here). */
static void
ak_like(EVP_PKEY *k, TPM2B_PUBLIC *pub)
{
	BIGNUM *n = NULL;

	memset(pub, 0, sizeof(*pub));
	pub->publicArea.type = TPM2_ALG_RSA;
	pub->publicArea.nameAlg = TPM2_ALG_SHA256;
	pub->publicArea.parameters.rsaDetail.keyBits = 2048;
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	pub->publicArea.unique.rsa.size = 256;
	assert_int_equal(
	    BN_bn2binpad(n, pub->publicArea.unique.rsa.buffer, 256), 256);
	BN_free(n);
}

static void
test_quote_checks(void **state)
{
	TPM2B_PUBLIC     ak;
	struct vfy_quote q;
	uint8_t          values[16][32], ref[16][32], nonce[32], other[32];
	uint8_t          att[1024], sig[512];
	size_t           alen = sizeof(att), slen = sizeof(sig);
	uint32_t         mask = 0x7fdf; /* 0-4,6-14 */
	char             err[256];

	(void) state;
	ak_like(ek_key, &ak); /* the suite's RSA key signs as "AK" */
	for (int i = 0; i < 16; i++) {
		memset(values[i], i + 1, 32);
	}
	memset(nonce, 0xab, sizeof(nonce));
	memset(other, 0xcd, sizeof(other));
	make_quote(ek_key, nonce, sizeof(nonce), mask,
	           (const uint8_t(*)[32]) values, att, &alen, sig, &slen);
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 0);
	assert_int_equal(q.mask, mask);
	assert_int_equal(q.reset_count, 3);
	/* another nonce */
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, other,
	                                 sizeof(other), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "another nonce"));
	/* a flipped signature bit */
	sig[7] ^= 1;
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "signature does not verify"));
	sig[7] ^= 1;
	/* a value that is not the quoted one */
	values[7][0] ^= 1;
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "pcrDigest differs"));
	/* values named for another PCR set */
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask & ~1u,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "quoted, values given for"));
	/* against a reference: PCR 7 (changed above) and the unquoted 15 */
	memcpy(ref, values, sizeof(ref));
	ref[7][0] ^= 1;
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) values,
	                                 mask, (const uint8_t(*)[32]) ref),
	                 1u << 7);
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) values,
	                                 mask | 1u << 15,
	                                 (const uint8_t(*)[32]) ref),
	                 1u << 7 | 1u << 15);
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) ref, mask,
	                                 (const uint8_t(*)[32]) ref),
	                 0);
}

static void
test_pcrs_parse(void **state)
{
	uint8_t  v[16][32];
	uint32_t mask;
	char     err[256], h[65];
	cJSON   *o = cJSON_CreateObject();

	(void) state;
	memset(h, 'a', 64);
	h[64] = '\0';
	cJSON_AddStringToObject(o, "0", h);
	cJSON_AddStringToObject(o, "14", h);
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), 0);
	assert_int_equal(mask, 1u | 1u << 14);
	assert_int_equal(v[14][31], 0xaa);
	cJSON_AddStringToObject(o, "16", h);
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"16\" is not a PCR index"));
	cJSON_DeleteItemFromObject(o, "16");
	cJSON_AddStringToObject(o, "3", "abcd");
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "PCR 3 is not 64 hex digits"));
	cJSON_Delete(o);
}

static void
test_ek_templates_ecc(void **state)
{
	TPM2B_PUBLIC rsa, ecc;
	EVP_PKEY    *k, *pk;
	uint8_t      pt[65];
	size_t       ptlen = 0;

	(void) state;
	tek_ek_template_alg(&rsa, TPM2_ALG_RSA);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	assert_int_equal(tek_ek_alg(&rsa), TPM2_ALG_RSA);
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_ECC);
	assert_true(tek_is_ek_template(&rsa));
	assert_false(tek_is_ek_template(&ecc));
	ecc.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_NULL);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	ecc.publicArea.objectAttributes |= TPMA_OBJECT_SIGN_ENCRYPT;
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_NULL);
	/* an ECC public area as an OpenSSL key: the same point */
	k = EVP_EC_gen("P-256");
	assert_non_null(k);
	assert_true(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY,
	                                            pt, sizeof(pt), &ptlen));
	assert_int_equal(ptlen, 65);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	memcpy(ecc.publicArea.unique.ecc.x.buffer, pt + 1, 32);
	memcpy(ecc.publicArea.unique.ecc.y.buffer, pt + 33, 32);
	pk = tek_pub_to_pkey(&ecc);
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_eq(pk, k), 1);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(k);
}

static void
test_registry_attest_tables(void **state)
{
	struct registry r;
	uint8_t         v[16][32], g[16][32];
	uint32_t        mask;
	char err[256], path[] = "/tmp/verify_test2.XXXXXX", cert[64], tr[16];
	char p2[300];
	int  fd = mkstemp(path);

	(void) state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	/* nonces: once, for the device they were issued to */
	assert_int_equal(r.ops->nonce_add(r.h, "dev-a", "n1", err, sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-b", "n1", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n2", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n1", err, sizeof(err)), 1);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n1", err, sizeof(err)), 2);
	/* reference PCRs: replaced as a whole */
	assert_int_equal(
	    r.ops->ref_get(r.h, "dev-a", &mask, g, err, sizeof(err)), 0);
	memset(v, 0x11, sizeof(v));
	assert_int_equal(r.ops->ref_put(r.h, "dev-a", 0x3,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	v[4][0] = 0x22;
	assert_int_equal(r.ops->ref_put(r.h, "dev-a", 0x10,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->ref_get(r.h, "dev-a", &mask, g, err, sizeof(err)), 1);
	assert_int_equal(mask, 0x10);
	assert_memory_equal(g[4], v[4], 32);
	/* hardware EK */
	assert_int_equal(r.ops->hw_ek_get(r.h, "dev-a", cert, sizeof(cert), tr,
	                                  sizeof(tr), err, sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->hw_ek_put(r.h, "dev-a", "PEM", "maker", err, sizeof(err)),
	    0);
	assert_int_equal(r.ops->hw_ek_get(r.h, "dev-a", cert, sizeof(cert), tr,
	                                  sizeof(tr), err, sizeof(err)),
	                 1);
	assert_string_equal(tr, "maker");
	vfy_registry_close(&r);
	/* a registry of the original schema gets the new tables on open and
	 * keeps its data */
	{
		char cmd[600];

		unlink(path);
		snprintf(
		    cmd, sizeof(cmd),
		    "python3 -c \"import sqlite3; c = sqlite3.connect('%s'); "
		    "c.execute('CREATE TABLE alerts(ek_fp TEXT NOT NULL, "
		    "first_device TEXT NOT NULL, second_device TEXT NOT "
		    "NULL, vm TEXT NOT NULL, at INTEGER NOT NULL)'); "
		    "c.execute(\\\"INSERT INTO alerts "
		    "VALUES('e','a','b','v',1)\\\"); "
		    "c.commit()\"",
		    path);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alerts(r.h, count_alert, NULL, err, sizeof(err)), 0);
	assert_int_equal(n_alerts, 1);
	assert_int_equal(r.ops->nonce_add(r.h, "dev-a", "n1", err, sizeof(err)),
	                 0);
	vfy_registry_close(&r);
	unlink(path);
	snprintf(p2, sizeof(p2), "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s-shm", path);
	unlink(p2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_make_credential_roundtrip),
	    cmocka_unit_test(test_make_credential_refuses),
	    cmocka_unit_test(test_kdfa_shape),
	    cmocka_unit_test(test_is_ak_and_templates),
	    cmocka_unit_test(test_pub_hex_and_name),
	    cmocka_unit_test(test_registry_sqlite),
	    cmocka_unit_test(test_registry_pg),
	    cmocka_unit_test(test_registry_races_sqlite),
	    cmocka_unit_test(test_registry_races_pg),
	    cmocka_unit_test(test_registry_attest_sqlite),
	    cmocka_unit_test(test_registry_attest_pg),
	    cmocka_unit_test(test_registry_migration),
	    cmocka_unit_test(test_quote_checks),
	    cmocka_unit_test(test_pcrs_parse),
	    cmocka_unit_test(test_ek_templates_ecc),
	    cmocka_unit_test(test_registry_attest_tables),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
