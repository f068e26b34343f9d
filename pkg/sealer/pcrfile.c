/*
 * pcrfile.c: the vault PCR set from the file the OS keeps it in.
 *
 * EVE-OS keeps the PCR set its vault key is sealed to in
 * /persist/status/policy-pcr.json, as its controller sent it:
 * types.VaultKeyPolicyPCR marshalled by Go, {"PolicyPresent": bool,
 * "Indexes": [int...], "ID": int}, rewritten by rename
 * (evetpm.SaveDiskKeyPolicyPcr). With --pcr-file the broker takes its set
 * from there: read at start (provisioning seals to it), then watched
 * (stat once a second: a rename gives a new inode, an edit a new mtime or
 * size); a new valid set reseals the master key to it, so the controller
 * changes EVE's vault and our master together. The rules are EVE's
 * (ValidatePolicyPcr) and ours (pcrset_parse): PCR 0 in, PCR 5 out,
 * indexes 0-15, no duplicates. A file that breaks them, or is not JSON,
 * is logged with the reason and the last good set stays in force.
 */
#include "sealer.h"

#include "common.h"
#include "keyfmt.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRFILE_MAX (64u << 10)

int
pcrfile_parse(const char *buf, size_t len, uint32_t *mask, char *err,
              size_t errlen)
{
	cJSON       *o = cJSON_ParseWithLength(buf, len);
	const cJSON *idx, *e;
	char         list[128], perr[REASON_LEN];
	size_t       n = 0;
	int          count = 0, rc = -1;

	list[0] = '\0';
	if (o == NULL || !cJSON_IsObject(o)) {
		strfmt(err, errlen, "not a JSON object");
		goto out;
	}
	idx = cJSON_GetObjectItemCaseSensitive(o, "Indexes");
	if (!cJSON_IsArray(idx)) {
		strfmt(err, errlen, "no \"Indexes\" list");
		goto out;
	}
	cJSON_ArrayForEach(e, idx)
	{
		int w;

		if (!cJSON_IsNumber(e) ||
		    e->valuedouble != (double) e->valueint || e->valueint < 0 ||
		    e->valueint > 99) {
			strfmt(err, errlen, "\"Indexes\" holds %s",
			       cJSON_IsNumber(e)
			           ? "a number outside 0-15"
			           : "something other than a number");
			goto out;
		}
		if (++count > 15) { /* EVE's PCRIndexMaxCount */
			strfmt(err, errlen, "more than 15 PCRs in \"Indexes\"");
			goto out;
		}
		w = snprintf(list + n, sizeof(list) - n, "%s%d", n ? "," : "",
		             e->valueint);
		if (w < 0 || (size_t) w >= sizeof(list) - n) {
			strfmt(err, errlen, "\"Indexes\" too long");
			goto out;
		}
		n += (size_t) w;
	}
	/* the one set of rules for every PCR set the broker takes */
	if (pcrset_parse(list, mask, perr, sizeof(perr)) < 0) {
		strfmt(err, errlen, "%s", perr);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
pcrfile_read(const char *path, uint32_t *mask, char *err, size_t errlen)
{
	char  *buf = NULL, perr[REASON_LEN];
	size_t len;
	int    rc;

	if (read_file(path, PCRFILE_MAX, &buf, &len) < 0) {
		strfmt(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? 1 : -1;
	}
	rc = pcrfile_parse(buf, len, mask, perr, sizeof(perr));
	free(buf);
	if (rc < 0) {
		strfmt(err, errlen, "%s: %s", path, perr);
	}
	return rc;
}

int
broker_reseal(struct broker *b, uint32_t mask, char *err, size_t errlen)
{
	struct seal_blob        nb;
	const struct seal_blob *cur;
	struct tpm             *t;
	uint8_t                *m;
	TSS2_RC                 rc;
	char                    from[PCRS_LEN], to[PCRS_LEN];
	int                     ret = -1;

	if ((m = secmem_alloc(2 * SEAL_MASTER_LEN)) == NULL) {
		strfmt(err, errlen, "cannot lock memory for the master key");
		return -1;
	}
	pcrset_format(mask, to, sizeof(to));
	if ((t = broker_tpm_lock(b)) == NULL) {
		strfmt(err, errlen, "no hardware TPM to reseal on");
		goto out;
	}
	if (broker_ensure_blob(b, &rc, err, errlen) < 0 ||
	    (cur = broker_blob(b)) == NULL) {
		goto out;
	}
	pcrset_format(cur->mask, from, sizeof(from));
	if (cur->mask == mask) {
		ret = 0;
		goto out;
	}
	if (cur->nbranches != 1) {
		strfmt(err, errlen,
		       "a planned update is pending: resealing "
		       "to PCRs %s waits until it is committed or dropped",
		       to);
		goto out;
	}
	if (seal_unseal(t, cur, m, &rc, err, errlen) < 0 ||
	    seal_create(t, mask, m, &nb, &rc, err, errlen) < 0 ||
	    seal_unseal(t, &nb, m + SEAL_MASTER_LEN, &rc, err, errlen) < 0) {
		goto out;
	}
	if (memcmp(m, m + SEAL_MASTER_LEN, SEAL_MASTER_LEN) != 0) {
		strfmt(err, errlen, "the resealed blob unseals to another key");
		goto out;
	}
	if (seal_blob_store(b->sealpath, &nb) < 0) {
		strfmt(err, errlen, "cannot write %s: %s", b->sealpath,
		       strerror(errno));
		goto out;
	}
	broker_set_blob(b, &nb);
	log_info("master key resealed from PCRs %s to PCRs %s", from, to);
	ret = 1;
out:
	broker_tpm_unlock(b);
	secmem_free(m, 2 * SEAL_MASTER_LEN);
	return ret;
}

struct pcrwatch {
	struct broker  *b;
	char            path[PATH_LEN];
	unsigned        period_ms;
	pthread_t       thr;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	bool            stop;
	uint32_t        good;   /* the last good set read from the file */
	bool            sealed; /* good is what the master is sealed to */
	struct stat     seen;   /* the file as last read (st_ino 0: none) */
};

static bool
changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_dev != b->st_dev ||
	       a->st_size != b->st_size ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

static void
watch_once(struct pcrwatch *w)
{
	struct stat st;
	uint32_t    mask;
	char        err[REASON_LEN], pcrs[PCRS_LEN];
	int         r;

	if (stat(w->path, &st) < 0) {
		memset(&st, 0, sizeof(st)); /* gone: the last good set stays */
	}
	if (changed(&st, &w->seen)) {
		w->seen = st;
		if (st.st_ino == 0) {
			log_warnx("PCR policy file %s is gone: keeping PCRs "
			          "as they are",
			          w->path);
			return;
		}
		r = pcrfile_read(w->path, &mask, err, sizeof(err));
		if (r != 0) {
			pcrset_format(w->good, pcrs, sizeof(pcrs));
			log_error("PCR policy file: %s; keeping the last good "
			          "set %s",
			          err, pcrs);
			return;
		}
		if (mask != w->good) {
			w->good = mask;
			w->sealed = false;
		}
	}
	if (!w->sealed) {
		r = broker_reseal(w->b, w->good, err, sizeof(err));
		pcrset_format(w->good, pcrs, sizeof(pcrs));
		if (r < 0) {
			log_warnx("PCR policy file %s asks for PCRs %s: %s "
			          "(retried)",
			          w->path, pcrs, err);
			return;
		}
		w->sealed = true;
		if (r == 1 && broker_recheck(w->b) < 0) {
			log_warnx("no locked memory for the status check after "
			          "the reseal");
		}
	}
}

static void *
watch_main(void *arg)
{
	struct pcrwatch *w = arg;
	struct timespec  ts;

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		pthread_mutex_unlock(&w->mu);
		watch_once(w);
		pthread_mutex_lock(&w->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += w->period_ms / 1000;
		ts.tv_nsec += (long) (w->period_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!w->stop) {
			(void) pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
pcrwatch_start(struct pcrwatch **wp, struct broker *b, const char *path,
               uint32_t initial, bool from_file, unsigned period_ms)
{
	struct pcrwatch *w = calloc(1, sizeof(*w));

	*wp = NULL;
	if (w == NULL) {
		return -1;
	}
	w->b = b;
	snprintf(w->path, sizeof(w->path), "%s", path);
	w->period_ms = period_ms ? period_ms : 1000;
	w->good = initial;
	/* a set read from the file is sealed to on the first pass (the blob
	 * may be older than the file); --pcrs alone never reseals */
	w->sealed = !from_file;
	(void) stat(path, &w->seen);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thr, NULL, watch_main, w) != 0) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return -1;
	}
	*wp = w;
	return 0;
}

void
pcrwatch_stop(struct pcrwatch *w)
{
	if (w == NULL) {
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thr, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}
