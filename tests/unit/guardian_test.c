/* guardian_test.c: the guardian's logic on crafted state files in temp
 * directories: manifest round-trip, blob checks, rotation, the
 * classification table, restore/reset/purge requests, quarantine cap.
 * (Real swtpm runs are in tests/integration/guardian_*.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common.h"
#include "guardian.h"
#include "log.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define UUID1 "aaaaaaaa-0000-0000-0000-000000000001"
#define UUID2 "aaaaaaaa-0000-0000-0000-000000000002"

static char            root[128];
static struct guardian G;

static int
setup(void **state)
{
	(void) state;
	snprintf(root, sizeof(root), "/tmp/guardian-test.XXXXXX");
	assert_non_null(mkdtemp(root));
	assert_int_equal(gd_init(&G, root, getuid(), getgid(), false), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	gd_fini(&G);
	remove_tree(root);
	return 0;
}

/* A swtpm-like blob: header v2 + one TLV whose data is tag repeated. */
static size_t
blob(uint8_t *buf, size_t datalen, uint8_t tag, bool enc)
{
	size_t tot = 10 + 6 + datalen;

	buf[0] = 2;
	buf[1] = 1;
	buf[2] = 0;
	buf[3] = 10;
	buf[4] = 0;
	buf[5] = enc ? 9 : 0;
	buf[6] = (uint8_t) (tot >> 24);
	buf[7] = (uint8_t) (tot >> 16);
	buf[8] = (uint8_t) (tot >> 8);
	buf[9] = (uint8_t) tot;
	buf[10] = 0;
	buf[11] = enc ? 2 : 1;
	buf[12] = (uint8_t) (datalen >> 24);
	buf[13] = (uint8_t) (datalen >> 16);
	buf[14] = (uint8_t) (datalen >> 8);
	buf[15] = (uint8_t) datalen;
	memset(buf + 16, tag, datalen);
	return tot;
}

/* Each VM's state differs: the data starts with its uuid, then the tag. */
#define TAG_OFF (16 + 36)
static size_t
vm_blob(uint8_t *buf, const char *uuid, uint8_t tag)
{
	size_t n = blob(buf, 500, tag, false);
	memcpy(buf + 16, uuid, 36);
	return n;
}

static void
sdir(const char *uuid, char *dst, size_t len)
{
	snprintf(dst, len, "%s/persist/swtpm/tpm-state-%s", root, uuid);
}

/* What swtpm does: write TMP2-00.permall, rename over tpm2-00.permall. */
static void
swtpm_write(const char *uuid, uint8_t tag)
{
	char    d[PATH_LEN], tmp[PATH_LEN], cur[PATH_LEN];
	uint8_t b[600];
	size_t  n = vm_blob(b, uuid, tag);
	int     fd;

	sdir(uuid, d, sizeof(d));
	snprintf(tmp, sizeof(tmp), "%s/%s", d, GD_PERMALL_TMP);
	snprintf(cur, sizeof(cur), "%s/%s", d, GD_PERMALL);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t) n);
	close(fd);
	assert_int_equal(rename(tmp, cur), 0);
}

/* tag byte of the current swtpm file, -1 if absent */
static int
current_tag(const char *uuid)
{
	char   p[PATH_LEN];
	char  *buf;
	size_t len;
	int    t;

	sdir(uuid, p, sizeof(p));
	strcat(p, "/" GD_PERMALL);
	if (read_file(p, 1 << 20, &buf, &len) < 0) {
		return -1;
	}
	t = len > TAG_OFF ? (uint8_t) buf[TAG_OFF] : -2;
	free(buf);
	return t;
}

static struct guardian_rep
call(int op, const char *uuid)
{
	struct guardian_req q;
	struct guardian_rep r;

	memset(&q, 0, sizeof(q));
	q.op = op;
	snprintf(q.uuid, sizeof(q.uuid), "%s", uuid);
	assert_int_equal(gd_request(&G, &q, &r), 0);
	return r;
}

static struct gd_vm *
vm(const char *uuid)
{
	struct gd_vm *v = gd_vm_find(&G, uuid);
	assert_non_null(v);
	return v;
}

static int
count_gens(const char *uuid)
{
	char           d[PATH_LEN];
	DIR           *dd;
	struct dirent *e;
	int            n = 0;

	snprintf(d, sizeof(d), "%s/persist/swtpm/guardian/%s", root, uuid);
	dd = opendir(d);
	if (dd == NULL) {
		return -1;
	}
	while ((e = readdir(dd)) != NULL) {
		n += e->d_name[0] == 'g' &&
		     strstr(e->d_name, ".permall") != NULL;
	}
	closedir(dd);
	return n;
}

/* prepare, two generations A then B, release: cur = B, bak = A */
static void
two_generations(const char *uuid)
{
	struct guardian_rep r = call(GOP_PREPARE, uuid);

	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_NEW);
	swtpm_write(uuid, 'A');
	assert_int_equal(gd_sync(&G, vm(uuid)), 0);
	swtpm_write(uuid, 'B');
	assert_int_equal(gd_sync(&G, vm(uuid)), 0);
	assert_int_equal(vm(uuid)->m.generation, 2);
	r = call(GOP_RELEASE, uuid);
	assert_true(r.ok);
}

static void
gen_file(const char *uuid, bool backup, char *dst, size_t len)
{
	struct gd_vm *v = vm(uuid);
	gd_gen_path(v, backup ? v->m.bak.id : v->m.cur.id, dst, len);
}

static void
cur_file(const char *uuid, char *dst, size_t len)
{
	sdir(uuid, dst, len);
	strncat(dst, "/" GD_PERMALL, len - strlen(dst) - 1);
}

static void
manifest_file(const char *uuid, char *dst, size_t len)
{
	snprintf(dst, len, "%s/persist/swtpm/guardian/%s/%s", root, uuid,
	         GD_MANIFEST);
}

static void
flip_bit(const char *path, long off)
{
	int     fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	if (off < 0) {
		off = lseek(fd, 0, SEEK_END) / 2;
	}
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void
truncate_half(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
}

/* ---- tests ---- */

static void
test_manifest_roundtrip(void **state)
{
	struct gd_manifest m, d;
	char              *buf, err[128];
	size_t             len;

	(void) state;
	gd_manifest_init(&m, UUID1, true);
	m.active = true;
	m.generation = 42;
	m.next_id = 100;
	m.last_backup = 1700000000;
	m.resets = 2;
	m.classification = STATE_RESTORED;
	snprintf(m.reason, sizeof(m.reason), "put back");
	m.cur = (struct gd_gen){true,
	                        99,
	                        1386,
	                        {1, 2, 3},
	                        1700000001,
	                        12345,
	                        1700000001123456789LL};
	m.bak = (struct gd_gen){true,
	                        98,
	                        1380,
	                        {9, 8, 7},
	                        1700000000,
	                        12344,
	                        1700000000123456789LL};
	assert_int_equal(gd_manifest_encode(&m, &buf, &len), 0);
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)), 0);
	assert_memory_equal(&m, &d, sizeof(m));

	/* a flipped bit anywhere, a truncation: rejected */
	buf[len / 2] ^= 0x01;
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)),
	                 -1);
	buf[len / 2] ^= 0x01;
	buf[3] ^= 0x01;
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)),
	                 -1);
	buf[3] ^= 0x01;
	assert_int_equal(gd_manifest_decode(buf, len / 2, &d, err, sizeof(err)),
	                 -1);
	assert_int_equal(gd_manifest_decode(buf, 0, &d, err, sizeof(err)), -1);
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)), 0);
	free(buf);

	/* absent generations round-trip too */
	gd_manifest_init(&m, UUID2, false);
	assert_int_equal(gd_manifest_encode(&m, &buf, &len), 0);
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)), 0);
	assert_false(d.cur.present);
	assert_false(d.bak.present);
	assert_string_equal(d.uuid, UUID2);
	free(buf);
}

/* "<sha256 hex>\n<json>\n", the manifest's framing, around json */
static size_t
framed(const char *json, char *out, size_t outlen)
{
	uint8_t      d[32];
	unsigned int n = 0;
	char         hex[65];

	assert_int_equal(
	    EVP_Digest(json, strlen(json), d, &n, EVP_sha256(), NULL), 1);
	hex_encode(d, sizeof(d), hex, sizeof(hex));
	return (size_t) snprintf(out, outlen, "%s\n%s\n", hex, json);
}

#define MF_HEAD                                                                \
	"{\"format\":1,\"uuid\":\"" UUID1 "\",\"encrypted\":false,"            \
	"\"active\":true,\"generation\":3,"
#define MF_GEN                                                                 \
	"{\"id\":4,\"size\":10,\"sha256\":\"00112233445566778899aabbccddeeff"  \
	"00112233445566778899aabbccddeeff\",\"time\":5,\"ino\":6,"             \
	"\"mtime_ns\":\"1700000000123456789\"}"

static void
manifest_bad(const char *json, const char *why)
{
	char               buf[4096], err[512];
	struct gd_manifest d;
	size_t             len = framed(json, buf, sizeof(buf));

	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)),
	                 -1);
	if (strstr(err, why) == NULL) {
		fail_msg("\"%s\" does not say \"%s\"", err, why);
	}
	assert_false(d.cur.present);
}

static void
test_manifest_malformed(void **state)
{
	char               buf[4096], err[512], reason[400];
	struct gd_manifest d;
	size_t             len;

	(void) state;
	/* a hand-written manifest in the on-disk format loads */
	len = framed(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	                     "\"classification\":\"normal\",\"reason\":\"\","
	                     "\"current\":" MF_GEN ",\"backup\":null}",
	             buf, sizeof(buf));
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)), 0);
	assert_true(d.cur.present);
	assert_false(d.bak.present);
	assert_int_equal(d.cur.mtime_ns, 1700000000123456789LL);
	assert_int_equal(d.cur.sha[1], 0x11);
	assert_int_equal(d.classification, STATE_NORMAL);

	manifest_bad(MF_HEAD "\"last_backup\":0,\"resets\":0}",
	             "missing required field next_id");
	manifest_bad(MF_HEAD
	             "\"next_id\":\"5\",\"last_backup\":0,\"resets\":0}",
	             "field next_id: expected a number");
	manifest_bad(MF_HEAD "\"next_id\":5,\"last_backup\":-1,\"resets\":0}",
	             "field last_backup: -1 is not an integer");
	manifest_bad(MF_HEAD
	             "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	             "\"current\":{\"id\":4,\"size\":10,\"sha256\":\"+f"
	             "112233445566778899aabbccddeeff00112233445566778899"
	             "aabbccddeeff\",\"time\":5,\"ino\":6,\"mtime_ns\":"
	             "\"1\"}}",
	             "field current.sha256: not a hex digit");
	manifest_bad(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	                     "\"current\":{\"id\":4,\"size\":10,\"sha256\":\"00"
	                     "\",\"time\":5,\"ino\":6,\"mtime_ns\":\"1\"}}",
	             "field current.sha256: expected 64 hex digits");
	manifest_bad(MF_HEAD
	             "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	             "\"backup\":{\"id\":4,\"size\":10,\"sha256\":\"00112233"
	             "445566778899aabbccddeeff00112233445566778899aabbcc"
	             "ddeeff\",\"time\":5,\"ino\":6,\"mtime_ns\":\"12x\"}}",
	             "field backup.mtime_ns: \"12x\" is not a decimal");
	manifest_bad(MF_HEAD "\"next_id\":4,\"last_backup\":0,\"resets\":0,"
	                     "\"current\":" MF_GEN "}",
	             "field next_id: 4 is not past every generation's id");
	manifest_bad(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	                     "\"classification\":\"fine\"}",
	             "field classification: unknown value \"fine\"");
	manifest_bad(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	                     "\"current\":[]}",
	             "field current: expected an object");
	manifest_bad(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
	                     "\"spare\":1}",
	             "unknown field spare");
	manifest_bad("{\"format\":2}", "field format: 2 is not an integer in "
	                               "[1, 1]");
	/* oversize: a reason longer than its buffer */
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	{
		char json[1024];

		snprintf(json, sizeof(json),
		         MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0,"
		                 "\"reason\":\"%s\"}",
		         reason);
		manifest_bad(json, "field reason: string of 399 bytes over its "
		                   "limit");
	}
	/* the checksum line itself is strict hex: sscanf let "+f" by */
	len = framed(MF_HEAD "\"next_id\":5,\"last_backup\":0,\"resets\":0}",
	             buf, sizeof(buf));
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)), 0);
	buf[0] = '+';
	assert_int_equal(gd_manifest_decode(buf, len, &d, err, sizeof(err)),
	                 -1);
	assert_string_equal(err, "bad checksum line");
}

static void
test_blob_check(void **state)
{
	uint8_t b[700];
	size_t  n = blob(b, 500, 'x', false);
	bool    enc;
	char    why[128];

	(void) state;
	assert_true(gd_blob_check(b, n, &enc, why, sizeof(why)));
	assert_false(enc);
	assert_false(gd_blob_check(b, n - 1, &enc, why, sizeof(why)));
	assert_false(gd_blob_check(b, n / 2, &enc, why, sizeof(why)));
	assert_false(gd_blob_check(b, 0, &enc, why, sizeof(why)));
	b[0] = 3;
	assert_false(gd_blob_check(b, n, &enc, why, sizeof(why)));
	n = blob(b, 500, 'x', true);
	assert_true(gd_blob_check(b, n, &enc, why, sizeof(why)));
	assert_true(enc);
	b[14] = 0xff; /* TLV length past the end */
	assert_false(gd_blob_check(b, n, &enc, why, sizeof(why)));
}

static void
test_rotation(void **state)
{
	struct gd_vm  *v;
	char           cur[PATH_LEN], p[PATH_LEN];
	struct stat    st;
	struct gd_info fi;

	(void) state;
	assert_true(call(GOP_PREPARE, UUID1).ok);
	v = vm(UUID1);
	for (int i = 0; i < 10; i++) {
		swtpm_write(UUID1, (uint8_t) ('a' + i));
		assert_int_equal(gd_sync(&G, v), 0);
		/* never more than current + backup, never a copy */
		assert_true(count_gens(UUID1) <= 2);
	}
	assert_int_equal(v->m.generation, 10);
	cur_file(UUID1, cur, sizeof(cur));
	assert_int_equal(stat(cur, &st), 0);
	assert_int_equal(st.st_nlink, 2); /* swtpm's name + our link */
	assert_int_equal(v->m.cur.ino, st.st_ino);
	gd_gen_path(v, v->m.bak.id, p, sizeof(p));
	assert_int_equal(gd_file_info(p, false, &fi), 0);
	assert_true(gd_info_matches(&fi, &v->m.bak));
	assert_int_equal(fi.size, 516);

	/* identical content in a new inode: the backup stays the older one */
	{
		struct gd_gen bak = v->m.bak;
		uint8_t       b[600];
		size_t        n = vm_blob(b, UUID1, 'j');
		char          tmp[PATH_LEN];
		int           fd;
		sdir(UUID1, tmp, sizeof(tmp));
		strcat(tmp, "/x");
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
		assert_int_equal(write(fd, b, n), (ssize_t) n);
		close(fd);
		assert_int_equal(rename(tmp, cur), 0);
		assert_int_equal(gd_sync(&G, v), 0);
		assert_int_equal(v->m.bak.id, bak.id);
		assert_int_equal(v->m.generation, 10);
	}

	/* a torn file is not adopted: current stays */
	{
		uint64_t id = v->m.cur.id;
		swtpm_write(UUID1, 'z');
		truncate_half(cur);
		assert_int_equal(gd_sync(&G, v), 0);
		assert_int_equal(v->m.cur.id, id);
	}
	/* written in place: not adopted, backup untouched */
	{
		uint64_t bid = v->m.bak.id;
		swtpm_write(UUID1, 'y');
		assert_int_equal(gd_sync(&G, v), 0);
		bid = v->m.bak.id;
		flip_bit(cur, 100);
		assert_int_equal(gd_sync(&G, v), 0);
		assert_int_equal(v->m.bak.id, bid);
		gd_gen_path(v, bid, p, sizeof(p));
		assert_int_equal(gd_file_info(p, false, &fi), 0);
		assert_true(gd_info_matches(&fi, &v->m.bak));
	}
}

enum target { T_NONE, T_CUR, T_BAK, T_MANIFEST };
enum damage { D_DELETE, D_ZERO, D_HALF, D_FLIP, D_OTHER };

struct row {
	enum target t;
	enum damage d;
	int         cls;
	int         tag; /* expected content of the current file */
};

static void
damage(const char *path, enum damage d, const char *other)
{
	switch (d) {
	case D_DELETE:
		assert_int_equal(unlink(path), 0);
		break;
	case D_ZERO:
		assert_int_equal(truncate(path, 0), 0);
		break;
	case D_HALF:
		truncate_half(path);
		break;
	case D_FLIP:
		flip_bit(path, -1);
		break;
	case D_OTHER: {
		/* cp other path: writes into the existing inode */
		char  *buf;
		size_t len;
		int    fd;
		assert_int_equal(read_file(other, 1 << 20, &buf, &len), 0);
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, buf, len), (ssize_t) len);
		close(fd);
		free(buf);
		break;
	}
	}
}

static void
test_classification_table(void **state)
{
	static const struct row rows[] = {
	    {T_NONE, D_DELETE, STATE_NORMAL, 'B'},
	    {T_CUR, D_DELETE, STATE_RESTORED, 'B'},
	    {T_CUR, D_ZERO, STATE_RESTORED, 'A'},
	    {T_CUR, D_HALF, STATE_RESTORED, 'A'},
	    {T_CUR, D_FLIP, STATE_RESTORED, 'A'},
	    {T_CUR, D_OTHER, STATE_RESTORED, 'A'},
	    {T_BAK, D_DELETE, STATE_NORMAL, 'B'},
	    {T_BAK, D_ZERO, STATE_NORMAL, 'B'},
	    {T_BAK, D_HALF, STATE_NORMAL, 'B'},
	    {T_BAK, D_FLIP, STATE_NORMAL, 'B'},
	    {T_BAK, D_OTHER, STATE_NORMAL, 'B'},
	    {T_MANIFEST, D_DELETE, STATE_NORMAL, 'B'},
	    {T_MANIFEST, D_ZERO, STATE_NORMAL, 'B'},
	    {T_MANIFEST, D_HALF, STATE_NORMAL, 'B'},
	    {T_MANIFEST, D_FLIP, STATE_NORMAL, 'B'},
	    {T_MANIFEST, D_OTHER, STATE_NORMAL, 'B'},
	};
	char other_cur[PATH_LEN], other_man[PATH_LEN];

	(void) state;
	/* another VM, for "replaced by another VM's file" */
	two_generations(UUID2);
	cur_file(UUID2, other_cur, sizeof(other_cur));
	manifest_file(UUID2, other_man, sizeof(other_man));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char                uuid[UUID_LEN], path[PATH_LEN];
		struct guardian_rep r;
		snprintf(uuid, sizeof(uuid), "bbbbbbbb-0000-0000-0000-%012zu",
		         i);
		two_generations(uuid);
		switch (rows[i].t) {
		case T_NONE:
			path[0] = '\0';
			break;
		case T_CUR:
			cur_file(uuid, path, sizeof(path));
			break;
		case T_BAK:
			gen_file(uuid, true, path, sizeof(path));
			break;
		case T_MANIFEST:
			manifest_file(uuid, path, sizeof(path));
			break;
		}
		if (path[0]) {
			damage(path, rows[i].d,
			       rows[i].t == T_MANIFEST ? other_man : other_cur);
		}
		r = call(GOP_PREPARE, uuid);
		print_message("row %zu: target %d damage %d -> %s (%s)\n", i,
		              rows[i].t, rows[i].d,
		              state_class_name(r.classification), r.reason);
		assert_true(r.ok);
		assert_int_equal(r.classification, rows[i].cls);
		assert_int_equal(current_tag(uuid), rows[i].tag);
		/* afterwards: current and a good backup, both verified */
		{
			struct gd_vm  *v = vm(uuid);
			struct gd_info fi;
			char           p[PATH_LEN];
			assert_true(v->m.cur.present && v->m.bak.present);
			gd_gen_path(v, v->m.bak.id, p, sizeof(p));
			assert_int_equal(gd_file_info(p, false, &fi), 0);
			assert_true(gd_info_matches(&fi, &v->m.bak));
			gd_gen_path(v, v->m.cur.id, p, sizeof(p));
			assert_int_equal(gd_file_info(p, false, &fi), 0);
			assert_true(gd_info_matches(&fi, &v->m.cur));
		}
		/* a second prepare finds everything normal */
		r = call(GOP_PREPARE, uuid);
		assert_int_equal(r.classification, STATE_NORMAL);
	}
}

static void
test_reset_and_missing(void **state)
{
	char                p[PATH_LEN], q[PATH_LEN];
	struct guardian_rep r;
	struct stat         st;

	(void) state;
	/* both bad: reset, old files in quarantine */
	two_generations(UUID1);
	cur_file(UUID1, p, sizeof(p));
	truncate_half(p);
	gen_file(UUID1, true, p, sizeof(p));
	flip_bit(p, -1);
	r = call(GOP_PREPARE, UUID1);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_RESET);
	assert_int_equal(current_tag(UUID1), -1);
	assert_int_equal(count_gens(UUID1), 0);
	snprintf(q, sizeof(q), "%s/persist/swtpm/guardian/%s/quarantine", root,
	         UUID1);
	assert_int_equal(stat(q, &st), 0);
	/* swtpm starts fresh: new generations are adopted again */
	swtpm_write(UUID1, 'N');
	assert_int_equal(gd_sync(&G, vm(UUID1)), 0);
	assert_true(vm(UUID1)->m.cur.present);

	/* everything gone but the manifest: missing */
	two_generations(UUID2);
	cur_file(UUID2, p, sizeof(p));
	unlink(p);
	gen_file(UUID2, true, p, sizeof(p));
	unlink(p);
	gen_file(UUID2, false, p, sizeof(p));
	unlink(p);
	r = call(GOP_PREPARE, UUID2);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_MISSING);
}

static void
test_foreign_and_unreadable(void **state)
{
	char                p[PATH_LEN];
	struct guardian_rep r;
	int                 fd;

	(void) state;
	two_generations(UUID1);
	sdir(UUID1, p, sizeof(p));
	strcat(p, "/notes.txt");
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	r = call(GOP_PREPARE, UUID1);
	assert_int_equal(r.classification, STATE_NORMAL);
	assert_int_equal(access(p, F_OK), 0); /* never deleted */
	/* a reset keeps it too */
	r = call(GOP_RESET, UUID1);
	assert_true(r.ok);
	assert_int_equal(access(p, F_OK), 0);
	/* purge removes it */
	r = call(GOP_PURGE, UUID1);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_PURGED);
	assert_int_equal(access(p, F_OK), -1);

	/* state "directory" that is a file: error, named */
	sdir(UUID2, p, sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	r = call(GOP_PREPARE, UUID2);
	assert_false(r.ok);
	assert_int_equal(r.classification, STATE_ERROR);
	assert_non_null(strstr(r.reason, "not a directory"));
}

static void
test_requests(void **state)
{
	struct guardian_rep r;
	char                p[PATH_LEN];

	(void) state;
	/* unknown VM: clear errors */
	r = call(GOP_RESTORE, UUID1);
	assert_false(r.ok);
	assert_non_null(strstr(r.reason, "unknown VM"));
	r = call(GOP_QUERY, UUID1);
	assert_false(r.ok);
	r = call(GOP_RELEASE, UUID1);
	assert_false(r.ok);
	r = call(99, UUID1);
	assert_false(r.ok);
	assert_non_null(strstr(r.reason, "unknown op"));

	/* restore after a rejected start: the backup comes back */
	two_generations(UUID1);
	assert_true(call(GOP_PREPARE, UUID1).ok);
	r = call(GOP_RESTORE, UUID1);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_RESTORED);
	assert_int_equal(current_tag(UUID1), 'A');
	/* nothing different left: restore refuses, reset works */
	r = call(GOP_RESTORE, UUID1);
	assert_false(r.ok);
	r = call(GOP_RESET, UUID1);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_RESET);
	assert_int_equal(current_tag(UUID1), -1);
	r = call(GOP_QUERY, UUID1);
	assert_true(r.ok);
	assert_int_equal(r.classification, STATE_RESET);

	/* purge: everything gone */
	r = call(GOP_PURGE, UUID1);
	assert_true(r.ok);
	sdir(UUID1, p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/persist/swtpm/guardian/%s", root, UUID1);
	assert_int_equal(access(p, F_OK), -1);
	r = call(GOP_RESTORE, UUID1);
	assert_false(r.ok);

	/* ephemeral: emptied on every prepare */
	{
		struct guardian_req q;
		memset(&q, 0, sizeof(q));
		q.op = GOP_PREPARE;
		q.mode = VTPM_MODE_EPHEMERAL;
		snprintf(q.uuid, sizeof(q.uuid), "%s", UUID2);
		assert_int_equal(gd_request(&G, &q, &r), 0);
		assert_true(r.ok);
		assert_int_equal(r.classification, STATE_NEW);
		assert_non_null(strstr(r.state_dir, "/run/vtpm/ephemeral/"));
		snprintf(p, sizeof(p), "%s/x", r.state_dir);
		close(open(p, O_WRONLY | O_CREAT, 0600));
		assert_int_equal(gd_request(&G, &q, &r), 0);
		assert_int_equal(access(p, F_OK), -1);
	}
}

static void
test_restart_mid_rotation(void **state)
{
	struct gd_vm       *v;
	char                p[PATH_LEN], cur[PATH_LEN];
	struct guardian_rep r;

	(void) state;
	assert_true(call(GOP_PREPARE, UUID1).ok);
	swtpm_write(UUID1, 'A');
	gd_sync(&G, vm(UUID1));
	swtpm_write(UUID1, 'B');
	gd_sync(&G, vm(UUID1));
	/* killed after linking the next generation, before the manifest */
	v = vm(UUID1);
	swtpm_write(UUID1, 'C');
	cur_file(UUID1, cur, sizeof(cur));
	gd_gen_path(v, v->m.next_id, p, sizeof(p));
	assert_int_equal(link(cur, p), 0);
	/* and swtpm wrote once more while we were down */
	swtpm_write(UUID1, 'D');
	/* "restart": a new guardian over the same root */
	gd_fini(&G);
	assert_int_equal(gd_init(&G, root, getuid(), getgid(), false), 0);
	assert_int_equal(gd_load_all(&G), 0);
	v = vm(UUID1);
	assert_int_equal(v->m.generation, 3); /* D adopted at load */
	assert_int_equal(count_gens(UUID1), 2);
	r = call(GOP_PREPARE, UUID1);
	assert_int_equal(r.classification, STATE_NORMAL);
	assert_int_equal(current_tag(UUID1), 'D');
	gd_gen_path(v, v->m.bak.id, p, sizeof(p));
	{
		char  *buf;
		size_t len;
		assert_int_equal(read_file(p, 1 << 20, &buf, &len), 0);
		assert_int_equal(buf[TAG_OFF], 'B');
		free(buf);
	}
}

/* a burst within the commit interval is committed once, when due */
static void
test_commit_interval(void **state)
{
	struct gd_vm *v;
	int           next;

	(void) state;
	G.commit_ms = 200;
	assert_true(call(GOP_PREPARE, UUID1).ok);
	v = vm(UUID1);
	swtpm_write(UUID1, 'a');
	v->dirty = true;
	v->last_sync_ms = now_ms() - 1000;      /* after a quiet second */
	assert_int_equal(gd_flush_due(&G), -1); /* due at once: committed */
	assert_int_equal(v->m.generation, 1);
	swtpm_write(UUID1, 'b');
	v->dirty = true;
	next = gd_flush_due(&G);
	assert_true(next > 0 && next <= 200); /* not yet */
	assert_int_equal(v->m.generation, 1);
	swtpm_write(UUID1, 'c');
	sleep_ms((unsigned) next + 5);
	assert_int_equal(gd_flush_due(&G), -1);
	assert_int_equal(v->m.generation, 2); /* b skipped, c committed */
	assert_int_equal(current_tag(UUID1), 'c');
	assert_false(v->dirty);
}

/* inotify events as the kernel sends them, through a pipe: a rename of
 * tpm2-00.permall commits; IN_Q_OVERFLOW rescans every watched VM. */
static void
push_event(int fd, int wd, uint32_t mask, const char *name)
{
	char                  buf[sizeof(struct inotify_event) + 32];
	struct inotify_event *ev = (struct inotify_event *) buf;
	size_t                len = name ? 32 : 0;

	memset(buf, 0, sizeof(buf));
	ev->wd = wd;
	ev->mask = mask;
	ev->len = (uint32_t) len;
	if (name) {
		snprintf(ev->name, 32, "%s", name);
	}
	assert_int_equal(write(fd, buf, sizeof(*ev) + len),
	                 (ssize_t) (sizeof(*ev) + len));
}

static void
test_watch_events(void **state)
{
	struct gd_vm *a, *b;
	int           p[2];

	(void) state;
	G.commit_ms = 0;
	assert_true(call(GOP_PREPARE, UUID1).ok);
	assert_true(call(GOP_PREPARE, UUID2).ok);
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	G.ifd = p[0];
	a = vm(UUID1);
	b = vm(UUID2);
	a->wd = 7; /* as if inotify_add_watch had said so */
	b->wd = 8;
	swtpm_write(UUID1, 'a');
	push_event(p[1], 7, IN_MOVED_TO, GD_PERMALL);
	push_event(p[1], 7, IN_CLOSE_WRITE, "notes.txt"); /* ignored */
	assert_int_equal(gd_watch_process(&G), 0);
	assert_int_equal(a->m.generation, 1);
	assert_int_equal(b->m.generation, 0);
	/* lost events: the overflow makes the guardian look everywhere */
	swtpm_write(UUID1, 'b');
	swtpm_write(UUID2, 'x');
	push_event(p[1], -1, IN_Q_OVERFLOW, NULL);
	assert_int_equal(gd_watch_process(&G), 0);
	assert_int_equal(a->m.generation, 2);
	assert_int_equal(b->m.generation, 1);
	/* the directory went away: the watch is dropped, nothing crashes */
	push_event(p[1], 8, IN_IGNORED, NULL);
	assert_int_equal(gd_watch_process(&G), 0);
	assert_int_equal(b->wd, -1);
	close(p[1]);
	/* gd_fini closes G.ifd (our pipe's read end) */
}

static void
test_quarantine_cap(void **state)
{
	char           q[PATH_LEN];
	DIR           *d;
	struct dirent *e;
	int            n = 0;

	(void) state;
	assert_true(call(GOP_PREPARE, UUID1).ok);
	for (int i = 0; i < 10; i++) {
		swtpm_write(UUID1, (uint8_t) ('a' + i));
		gd_sync(&G, vm(UUID1));
		assert_true(call(GOP_RESET, UUID1).ok);
	}
	snprintf(q, sizeof(q), "%s/persist/swtpm/guardian/%s/quarantine", root,
	         UUID1);
	d = opendir(q);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		n += e->d_name[0] != '.';
	}
	closedir(d);
	assert_int_equal(n, GD_QUAR_MAX_ENTRIES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manifest_roundtrip),
	    cmocka_unit_test(test_manifest_malformed),
	    cmocka_unit_test(test_blob_check),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_classification_table, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_reset_and_missing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_and_unreadable, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_mid_rotation, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_watch_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_interval, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_quarantine_cap, setup,
	                                    teardown),
	};

	log_init(LOG_LVL_WARN, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
