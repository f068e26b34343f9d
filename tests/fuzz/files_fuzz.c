/* files_fuzz.c: libFuzzer target for the file formats the daemons decode
 * with the schema engine: the sealed blob, update.json, the escrow record,
 * a prediction file and the guardian's manifest. Any input must decode or
 * be refused with a reason; never crash; a manifest that decodes must
 * encode and decode back to the same struct. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "guardian.h"
#include "keyfmt.h"
#include "sealer.h"

static void
must_say_why(int rc, const char *err)
{
	if (rc < 0 && err[0] == '\0') {
		abort(); /* a refusal must say why */
	}
}

/* the manifest's framing: "<sha256 hex>\n<json>\n", so that the decoder
 * gets past its checksum to the JSON line */
static void
manifest(const uint8_t *data, size_t size)
{
	struct gd_manifest m, again;
	uint8_t            d[32];
	unsigned int       n = 0;
	char               err[256] = "", *buf, *enc = NULL;
	size_t             len;
	int                rc;

	if ((buf = malloc(65 + size + 1)) == NULL ||
	    EVP_Digest(data, size, d, &n, EVP_sha256(), NULL) != 1) {
		abort();
	}
	hex_encode(d, sizeof(d), buf, 65);
	buf[64] = '\n';
	memcpy(buf + 65, data, size);
	buf[65 + size] = '\n';
	rc = gd_manifest_decode(buf, 65 + size + 1, &m, err, sizeof(err));
	must_say_why(rc, err);
	free(buf);
	if (rc < 0) {
		return;
	}
	if (gd_manifest_encode(&m, &enc, &len) < 0 ||
	    gd_manifest_decode(enc, len, &again, err, sizeof(err)) < 0 ||
	    memcmp(&m, &again, sizeof(m)) != 0) {
		abort(); /* what we write we must read back identically */
	}
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int          fd = -1;
	static char         path[64];
	struct seal_blob    b;
	struct update_state st;
	struct escrow_file  ef;
	struct pcr_values   pv;
	uint32_t            named;
	char                err[256];

	if (fd < 0) {
		if ((fd = memfd_create("files_fuzz", 0)) < 0) {
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, data, size, 0) != (ssize_t) size) {
		abort();
	}
	err[0] = '\0';
	must_say_why(seal_blob_load(path, &b, err, sizeof(err)), err);
	err[0] = '\0';
	must_say_why(update_state_load(path, &st, err, sizeof(err)), err);
	err[0] = '\0';
	must_say_why(escrow_file_load(path, &ef, err, sizeof(err)), err);
	err[0] = '\0';
	must_say_why(pcrset_parse_prediction((const char *) data, size, &pv,
	                                     &named, err, sizeof(err)),
	             err);
	manifest(data, size);
	return 0;
}
