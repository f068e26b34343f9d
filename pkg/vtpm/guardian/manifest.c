/* manifest.c: the per-VM manifest (encode, decode, atomic save) and the
 * checks of one swtpm state file (size, SHA-256, blob structure). */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_FORMAT 1
#define MANIFEST_MAX    (64 * 1024)

static void
sha256(const void *buf, size_t len, uint8_t *out)
{
	unsigned n = GD_SHA_LEN;

	EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL);
}

void
gd_manifest_init(struct gd_manifest *m, const char *uuid, bool encrypted)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	m->encrypted = encrypted;
	m->next_id = 1;
	m->classification = STATE_NEW;
}

static cJSON *
gen_encode(const struct gd_gen *g)
{
	cJSON *o;
	char   hex[2 * GD_SHA_LEN + 1];

	if (!g->present) {
		return cJSON_CreateNull();
	}
	o = cJSON_CreateObject();
	if (o == NULL) {
		return NULL;
	}
	hex_encode(g->sha, GD_SHA_LEN, hex, sizeof(hex));
	cJSON_AddNumberToObject(o, "id", (double) g->id);
	cJSON_AddNumberToObject(o, "size", (double) g->size);
	cJSON_AddStringToObject(o, "sha256", hex);
	cJSON_AddNumberToObject(o, "time", (double) g->time);
	cJSON_AddNumberToObject(o, "ino", (double) g->ino);
	/* ns do not fit a double exactly: as a string */
	snprintf(hex, sizeof(hex), "%" PRId64, g->mtime_ns);
	cJSON_AddStringToObject(o, "mtime_ns", hex);
	return o;
}

int
gd_manifest_encode(const struct gd_manifest *m, char **out, size_t *len)
{
	cJSON  *root;
	char   *json, *buf;
	char    hex[2 * GD_SHA_LEN + 1];
	uint8_t sha[GD_SHA_LEN];
	size_t  jlen;

	root = cJSON_CreateObject();
	if (root == NULL) {
		return -1;
	}
	cJSON_AddNumberToObject(root, "format", MANIFEST_FORMAT);
	cJSON_AddStringToObject(root, "uuid", m->uuid);
	cJSON_AddBoolToObject(root, "encrypted", m->encrypted);
	cJSON_AddBoolToObject(root, "active", m->active);
	cJSON_AddNumberToObject(root, "generation", (double) m->generation);
	cJSON_AddNumberToObject(root, "next_id", (double) m->next_id);
	cJSON_AddNumberToObject(root, "last_backup", (double) m->last_backup);
	cJSON_AddNumberToObject(root, "resets", (double) m->resets);
	cJSON_AddStringToObject(root, "classification",
	                        state_class_name(m->classification));
	cJSON_AddStringToObject(root, "reason", m->reason);
	cJSON_AddItemToObject(root, "current", gen_encode(&m->cur));
	cJSON_AddItemToObject(root, "backup", gen_encode(&m->bak));
	json = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (json == NULL) {
		return -1;
	}
	jlen = strlen(json);
	sha256(json, jlen, sha);
	hex_encode(sha, GD_SHA_LEN, hex, sizeof(hex));
	/* "<sha256 of the JSON line>\n<JSON>\n" */
	buf = malloc(2 * GD_SHA_LEN + 1 + jlen + 2);
	if (buf == NULL) {
		free(json);
		return -1;
	}
	*len = (size_t) sprintf(buf, "%s\n%s\n", hex, json);
	free(json);
	*out = buf;
	return 0;
}

/* The manifest's JSON line as gd_manifest_encode writes it. */
struct gen_file {
	int64_t id, size;
	uint8_t sha256[GD_SHA_LEN];
	int64_t time, ino;
	char    mtime_ns[24]; /* a decimal string: ns do not fit a double */
};
struct manifest_file {
	int64_t         format;
	char            uuid[UUID_LEN];
	bool            encrypted, active;
	int64_t         generation, next_id, last_backup, resets;
	int             classification;
	char            reason[REASON_LEN];
	struct gen_file current, backup;
	uint32_t        seen; /* which fields were present */
};

static const struct field gen_fields[] = {
    FINT(struct gen_file, id, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct gen_file, size, FF_REQUIRED, 0, INT64_MAX),
    FHEX(struct gen_file, sha256, FF_REQUIRED),
    FINT(struct gen_file, time, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct gen_file, ino, FF_REQUIRED, 0, INT64_MAX),
    FSTR(struct gen_file, mtime_ns, FF_REQUIRED),
};
static const struct schema gen_schema =
    SCHEMA("generation", MSG_NONE, struct gen_file, gen_fields);

enum { MF_CURRENT = 10, MF_BACKUP = 11 }; /* their index in the table */
static const struct field manifest_fields[] = {
    FINT(struct manifest_file, format, FF_REQUIRED, MANIFEST_FORMAT,
         MANIFEST_FORMAT),
    FUUID(struct manifest_file, uuid, FF_REQUIRED),
    FBOOL(struct manifest_file, encrypted, 0, 0),
    FBOOL(struct manifest_file, active, 0, 0),
    FINT(struct manifest_file, generation, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct manifest_file, next_id, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct manifest_file, last_backup, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct manifest_file, resets, FF_REQUIRED, 0, INT64_MAX),
    FENUM(struct manifest_file, classification, 0, state_class_names,
          STATE_UNKNOWN),
    FSTR(struct manifest_file, reason, 0),
    FOBJ(struct manifest_file, current, FF_NULLABLE, &gen_schema),
    FOBJ(struct manifest_file, backup, FF_NULLABLE, &gen_schema),
};
static const struct schema manifest_schema = {
    .name = "manifest",
    .type = MSG_NONE,
    .size = sizeof(struct manifest_file),
    .fields = manifest_fields,
    .nfields = NELEM(manifest_fields),
    .seen_at = 1 + offsetof(struct manifest_file, seen)};

/* A present generation from its file form; -1 with err on a bad
 * mtime_ns. */
static int
gen_from_file(const char *name, const struct gen_file *f, struct gd_gen *g,
              char *err, size_t errlen)
{
	char *end;

	errno = 0;
	g->mtime_ns = strtoll(f->mtime_ns, &end, 10);
	if (f->mtime_ns[0] == '\0' || *end != '\0' || errno != 0) {
		snprintf(
		    err, errlen,
		    "field %s.mtime_ns: \"%s\" is not a decimal count of ns",
		    name, f->mtime_ns);
		return -1;
	}
	g->present = true;
	g->id = (uint64_t) f->id;
	g->size = f->size;
	memcpy(g->sha, f->sha256, GD_SHA_LEN);
	g->time = f->time;
	g->ino = (uint64_t) f->ino;
	return 0;
}

int
gd_manifest_decode(const char *buf, size_t len, struct gd_manifest *m,
                   char *err, size_t errlen)
{
	const char           *nl;
	uint8_t               want[GD_SHA_LEN], got[GD_SHA_LEN];
	struct manifest_file *f;
	size_t                jlen;

	memset(m, 0, sizeof(*m));
	nl = memchr(buf, '\n', len);
	if (nl == NULL || nl - buf != 2 * GD_SHA_LEN) {
		snprintf(err, errlen, "no checksum line");
		return -1;
	}
	if (hex_decode(buf, 2 * GD_SHA_LEN, want, sizeof(want)) < 0) {
		snprintf(err, errlen, "bad checksum line");
		return -1;
	}
	nl++;
	jlen = len - (size_t) (nl - buf);
	if (jlen == 0 || nl[jlen - 1] != '\n') {
		snprintf(err, errlen, "truncated (no final newline)");
		return -1;
	}
	jlen--;
	sha256(nl, jlen, got);
	if (memcmp(want, got, GD_SHA_LEN) != 0) {
		snprintf(err, errlen, "checksum mismatch");
		return -1;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (schema_decode_json("JSON line", nl, jlen, &manifest_schema, f, err,
	                       errlen) < 0) {
		goto fail;
	}
	memcpy(m->uuid, f->uuid, sizeof(m->uuid));
	m->encrypted = f->encrypted;
	m->active = f->active;
	m->generation = f->generation;
	m->next_id = (uint64_t) f->next_id;
	m->last_backup = f->last_backup;
	m->resets = f->resets;
	m->classification = f->classification;
	memcpy(m->reason, f->reason, sizeof(m->reason));
	if (((f->seen & (1u << MF_CURRENT)) &&
	     gen_from_file("current", &f->current, &m->cur, err, errlen) < 0) ||
	    ((f->seen & (1u << MF_BACKUP)) &&
	     gen_from_file("backup", &f->backup, &m->bak, err, errlen) < 0)) {
		goto fail;
	}
	if ((m->cur.present && m->cur.id >= m->next_id) ||
	    (m->bak.present && m->bak.id >= m->next_id)) {
		snprintf(err, errlen,
		         "field next_id: %" PRIu64
		         " is not past every generation's id",
		         m->next_id);
		goto fail;
	}
	free(f);
	return 0;
fail:
	free(f);
	memset(m, 0, sizeof(*m));
	return -1;
}

int
gd_manifest_load(const char *path, struct gd_manifest *m, char *err,
                 size_t errlen)
{
	char  *buf;
	size_t len;
	int    rc;

	if (read_file(path, MANIFEST_MAX, &buf, &len) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	rc = gd_manifest_decode(buf, len, m, err, errlen);
	free(buf);
	if (rc < 0) {
		errno = EINVAL;
	}
	return rc;
}

/* Atomic (temp file + rename) but not fsynced: the old or the new
 * content after a crash of the process, and after a power cut whatever the
 * file system kept of the rename. */
static int
quick_write(const char *path, const void *buf, size_t len)
{
	char    tmp[PATH_LEN];
	int     fd, saved;
	ssize_t n;

	if (path_join(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid()) <
	    0) {
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -1;
	}
	n = write(fd, buf, len);
	if (n != (ssize_t) len || close(fd) < 0 || rename(tmp, path) < 0) {
		saved = n >= 0 && n != (ssize_t) len ? ENOSPC : errno;
		if (n != (ssize_t) len) {
			close(fd);
		}
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

int
gd_manifest_write(const char *path, const struct gd_manifest *m, bool durable)
{
	char  *buf;
	size_t len;
	int    rc;

	if (gd_manifest_encode(m, &buf, &len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	rc = durable ? durable_write(path, buf, len, 0600)
	             : quick_write(path, buf, len);
	free(buf);
	return rc;
}

int
gd_manifest_save(const char *path, const struct gd_manifest *m)
{
	return gd_manifest_write(path, m, true);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
	       (uint32_t) p[2] << 8 | p[3];
}

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t) (p[0] << 8 | p[1]);
}

/* swtpm 0.7.1 blob: {u8 version=2, u8 min_version, u16 hdrsize, u16 flags,
 * u32 totlen} big endian, then TLVs {u16 tag, u32 len, data}. Flag 0x1:
 * encrypted. A torn or truncated file fails the totlen or TLV walk. */
bool
gd_blob_check(const uint8_t *buf, size_t len, bool *encrypted, char *why,
              size_t whylen)
{
	size_t   off, hdr;
	unsigned ntlv = 0;

	*encrypted = false;
	if (len < 10) {
		snprintf(why, whylen, "%zu bytes, shorter than a header", len);
		return false;
	}
	if (buf[0] != 2 || buf[1] > 2) {
		snprintf(why, whylen, "header version %u/%u", buf[0], buf[1]);
		return false;
	}
	hdr = be16(buf + 2);
	if (hdr < 10 || hdr > len) {
		snprintf(why, whylen, "header size %zu", hdr);
		return false;
	}
	if (be32(buf + 6) != len) {
		snprintf(why, whylen, "header says %u bytes, file has %zu",
		         be32(buf + 6), len);
		return false;
	}
	*encrypted = (be16(buf + 4) & 0x1) != 0;
	for (off = hdr; off < len; ntlv++) {
		uint32_t l;
		if (len - off < 6) {
			snprintf(why, whylen, "torn TLV at %zu", off);
			return false;
		}
		l = be32(buf + off + 2);
		if (l > len - off - 6) {
			snprintf(why, whylen, "TLV at %zu runs past the end",
			         off);
			return false;
		}
		off += 6 + l;
	}
	if (ntlv == 0) {
		snprintf(why, whylen, "no data");
		return false;
	}
	return true;
}

int
gd_file_info(const char *path, bool do_fsync, struct gd_info *fi)
{
	struct stat st;
	uint8_t    *buf = NULL;
	size_t      got = 0;
	ssize_t     n;
	int         fd;

	memset(fi, 0, sizeof(*fi));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT) {
			snprintf(fi->why, sizeof(fi->why), "absent");
			return 0;
		}
		snprintf(fi->why, sizeof(fi->why), "open: %s", strerror(errno));
		return -1;
	}
	fi->exists = true;
	if (fstat(fd, &st) < 0) {
		snprintf(fi->why, sizeof(fi->why), "fstat: %s",
		         strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(fi->why, sizeof(fi->why), "not a regular file");
		close(fd);
		return 0;
	}
	if ((size_t) st.st_size > GD_STATE_MAX) {
		snprintf(fi->why, sizeof(fi->why), "%lld bytes, too large",
		         (long long) st.st_size);
		close(fd);
		return 0;
	}
	fi->ino = (uint64_t) st.st_ino;
	fi->mtime_ns =
	    (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	buf = malloc((size_t) st.st_size + 1);
	if (buf == NULL) {
		snprintf(fi->why, sizeof(fi->why), "out of memory");
		goto fail;
	}
	/* one byte more than the size: a file that grows shows as too long */
	if ((n = read_all(fd, buf, (size_t) st.st_size + 1)) < 0) {
		snprintf(fi->why, sizeof(fi->why), "read: %s", strerror(errno));
		goto fail;
	}
	got = (size_t) n;
	if (got > (size_t) st.st_size) {
		/* grew while we read: somebody writes it in place */
		snprintf(fi->why, sizeof(fi->why), "changed while read");
		free(buf);
		close(fd);
		return 0;
	}
	if (do_fsync && fsync(fd) < 0) {
		snprintf(fi->why, sizeof(fi->why), "fsync: %s",
		         strerror(errno));
		goto fail;
	}
	fi->size = (int64_t) got;
	sha256(buf, got, fi->sha);
	fi->valid =
	    gd_blob_check(buf, got, &fi->encrypted, fi->why, sizeof(fi->why));
	free(buf);
	close(fd);
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

bool
gd_info_matches(const struct gd_info *fi, const struct gd_gen *g)
{
	return fi->exists && g->present && fi->size == g->size &&
	       memcmp(fi->sha, g->sha, GD_SHA_LEN) == 0;
}
