/*
 * fresh.c: freshness bound to the hardware TPM. No older copy of a VM's
 * state (one directory, the guardian's metadata, the broker's files, all
 * of /persist) is served as if it were current.
 *
 * Two pieces (docs/keybroker.md "Freshness"):
 *   - one NV counter on the hardware TPM (--freshness-nv, a counter index:
 *     it only ever grows, and no file copy can take it back);
 *   - a journal, <vault>/freshness.json: per VM the last checkpointed
 *     generation, its SHA-256 and its backup's, and whether the VM ran
 *     since; plus the counter value it belongs to. Line 1 is
 *     HMAC-SHA256(K, line 2), K = HKDF(master, "vtpm-freshness-v1"),
 *     derived at the first unseal and kept in locked memory.
 *
 * A checkpoint writes the journal with counter+1 (durable), then
 * increments the NV counter: a crash between the two leaves journal =
 * counter+1, which the next start completes. At start a journal whose
 * counter is neither the NV value nor NV+1 is a replayed journal: every
 * VM in it is suspect until the operator accepts it.
 *
 * NV writes: one per checkpoint, checkpoints batched (VM stops within
 * FRESH_BATCH_MS share one; running VMs every --checkpoint-interval). A
 * VM start changes the journal file only (running = true): a replayed
 * journal of the same counter value can only be stricter.
 */
#include "sealer.h"
#include "common.h"
#include "keyfmt.h"
#include "log.h"
#include "pubsub.h"
#include "tpm_ek.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#define FRESH_FILE     "freshness.json"
#define FRESH_INFO     "vtpm-freshness-v1"
#define FRESH_BATCH_MS 50
#define FRESH_MAX_VMS  4096

struct fresh_vm {
	char    uuid[UUID_LEN];
	int64_t gen;
	char    sha[SHA_HEX_LEN], bak[SHA_HEX_LEN];
	bool    running; /* started since its last checkpoint */
	bool    suspect; /* from a replayed journal: rollback until accepted */
	bool    accept;  /* operator: take the next state found */
	bool    passed;  /* in memory: its last check passed (stop may
	                    checkpoint it) */
};

struct fresh {
	struct broker  *b;
	pthread_mutex_t mu;     /* everything below but key */
	pthread_mutex_t key_mu; /* key, have_key (taken under tpm_mu) */
	uint8_t        *key;    /* K, secmem */
	bool            have_key;
	char            path[PATH_LEN];
	bool            loaded;
	uint64_t        counter; /* journal's = the NV value once loaded */
	bool            stale;   /* journal older than the NV counter */
	bool            missing; /* no journal but the counter exists */
	char            stale_why[REASON_LEN];
	struct fresh_vm vms[FRESH_MAX_VMS];
	int             nvms;
	bool            dirty;      /* generations changed: checkpoint due */
	uint64_t        seq, done;  /* checkpoint requests, completed */
	uint64_t        nv_writes;  /* since start */
	uint64_t        last_ck_ms; /* now_ms of the last checkpoint */
	pthread_cond_t  cv;
	pthread_t       thr;
	bool            thr_up, quit;
};

/* ---- the NV counter ---- */

static int
nv_handle(struct fresh *f, struct tpm *t, ESYS_TR *h, bool create,
          bool *created, char *err, size_t errlen)
{
	TPM2_HANDLE idx = f->b->cfg.fresh_nv;
	TSS2_RC     rc;
	char        rcs[128];

	rc = Esys_TR_FromTPMPublic(t->ectx, idx, ESYS_TR_NONE, ESYS_TR_NONE,
	                           ESYS_TR_NONE, h);
	if (rc == TSS2_RC_SUCCESS) {
		TPM2B_NV_PUBLIC *pub = NULL;

		rc = Esys_NV_ReadPublic(t->ectx, *h, ESYS_TR_NONE, ESYS_TR_NONE,
		                        ESYS_TR_NONE, &pub, NULL);
		if (rc == TSS2_RC_SUCCESS &&
		    (TPM2_NT) ((pub->nvPublic.attributes &
		                TPMA_NV_TPM2_NT_MASK) >>
		               TPMA_NV_TPM2_NT_SHIFT) != TPM2_NT_COUNTER) {
			Esys_Free(pub);
			strfmt(err, errlen,
			       "NV index 0x%x is not a counter (somebody "
			       "else's?): choose another --freshness-nv",
			       idx);
			return -1;
		}
		Esys_Free(pub);
		return rc == TSS2_RC_SUCCESS ? 0 : -1;
	}
	if (!create) {
		strfmt(err, errlen, "NV counter 0x%x is not defined", idx);
		return 1;
	}
	{
		TPM2B_AUTH      auth = {.size = 0};
		TPM2B_NV_PUBLIC pi = {
		    .nvPublic = {
		        .nvIndex = idx,
		        .nameAlg = TPM2_ALG_SHA256,
		        .attributes =
		            (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) |
		            TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD |
		            TPMA_NV_OWNERREAD | TPMA_NV_NO_DA,
		        .dataSize = 8,
		    }};

		TPM_RETRY(rc, Esys_NV_DefineSpace(
		                  t->ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
		                  ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pi, h));
		if (rc != TSS2_RC_SUCCESS) {
			strfmt(err, errlen, "NV_DefineSpace 0x%x: %s", idx,
			       tek_rc_str(rc, rcs, sizeof(rcs)));
			return -1;
		}
		log_info("freshness: NV counter 0x%x defined", idx);
		if (created != NULL) {
			*created = true;
		}
	}
	return 0;
}

static int
nv_increment(struct fresh *f, struct tpm *t, ESYS_TR h, char *err,
             size_t errlen)
{
	TSS2_RC rc;
	char    rcs[128];

	TPM_RETRY(rc, Esys_NV_Increment(t->ectx, h, h, ESYS_TR_PASSWORD,
	                                ESYS_TR_NONE, ESYS_TR_NONE));
	if (rc != TSS2_RC_SUCCESS) {
		strfmt(err, errlen, "NV_Increment 0x%x: %s", f->b->cfg.fresh_nv,
		       tek_rc_str(rc, rcs, sizeof(rcs)));
		return -1;
	}
	f->nv_writes++;
	return 0;
}

/* 0 with *v; 1 when the counter was never incremented */
static int
nv_read(struct fresh *f, struct tpm *t, ESYS_TR h, uint64_t *v, char *err,
        size_t errlen)
{
	TPM2B_MAX_NV_BUFFER *d = NULL;
	TSS2_RC              rc;
	char                 rcs[128];

	TPM_RETRY(rc, Esys_NV_Read(t->ectx, h, h, ESYS_TR_PASSWORD,
	                           ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &d));
	if ((rc & ~TPM2_RC_N_MASK & 0xfff) == TPM2_RC_NV_UNINITIALIZED ||
	    rc == TPM2_RC_NV_UNINITIALIZED) {
		return 1;
	}
	if (rc != TSS2_RC_SUCCESS || d->size != 8) {
		strfmt(err, errlen, "NV_Read 0x%x: %s", f->b->cfg.fresh_nv,
		       tek_rc_str(rc, rcs, sizeof(rcs)));
		Esys_Free(d);
		return -1;
	}
	*v = 0;
	for (int i = 0; i < 8; i++) {
		*v = (*v << 8) | d->buffer[i];
	}
	Esys_Free(d);
	return 0;
}

/* ---- the journal ---- */

static void
mac_hex(struct fresh *f, const char *body, size_t len, char out[65])
{
	uint8_t      mac[32];
	unsigned int mlen = sizeof(mac);

	pthread_mutex_lock(&f->key_mu);
	HMAC(EVP_sha256(), f->key, KEY_LEN, (const uint8_t *) body, len, mac,
	     &mlen);
	pthread_mutex_unlock(&f->key_mu);
	hex_encode(mac, sizeof(mac), out, 65);
}

static struct fresh_vm *
vm_find(struct fresh *f, const char *uuid, bool add)
{
	for (int i = 0; i < f->nvms; i++) {
		if (strcasecmp(f->vms[i].uuid, uuid) == 0) {
			return &f->vms[i];
		}
	}
	if (!add || f->nvms == FRESH_MAX_VMS) {
		return NULL;
	}
	memset(&f->vms[f->nvms], 0, sizeof(f->vms[0]));
	strfmt(f->vms[f->nvms].uuid, UUID_LEN, "%s", uuid);
	f->vms[f->nvms].gen = -1;
	return &f->vms[f->nvms++];
}

/* Write the journal for counter c (durable). */
static int
journal_store(struct fresh *f, uint64_t c, char *err, size_t errlen)
{
	cJSON *o = cJSON_CreateObject(), *vms = cJSON_CreateObject();
	char  *body, mac[65], *all;
	size_t n;
	int    rc = -1;

	if (o == NULL || vms == NULL) {
		cJSON_Delete(o);
		cJSON_Delete(vms);
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	cJSON_AddNumberToObject(o, "format", 1);
	cJSON_AddNumberToObject(o, "counter", (double) c);
	for (int i = 0; i < f->nvms; i++) {
		struct fresh_vm *v = &f->vms[i];
		cJSON           *e = cJSON_CreateObject();

		cJSON_AddNumberToObject(e, "gen", (double) v->gen);
		cJSON_AddStringToObject(e, "sha", v->sha);
		cJSON_AddStringToObject(e, "bak", v->bak);
		cJSON_AddBoolToObject(e, "running", v->running);
		cJSON_AddBoolToObject(e, "suspect", v->suspect);
		cJSON_AddBoolToObject(e, "accept", v->accept);
		cJSON_AddItemToObject(vms, v->uuid, e);
	}
	cJSON_AddItemToObject(o, "vms", vms);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	mac_hex(f, body, strlen(body), mac);
	n = strlen(body) + 67;
	if ((all = malloc(n + 1)) != NULL) {
		snprintf(all, n + 1, "%s\n%s\n", mac, body);
		if (durable_write(f->path, all, strlen(all), 0600) == 0) {
			rc = 0;
		} else {
			strfmt(err, errlen, "write %s: %s", f->path,
			       strerror(errno));
		}
		free(all);
	}
	free(body);
	return rc;
}

/* Load the journal: 0, 1 when absent, -1 (err) when not ours. */
static int
journal_load(struct fresh *f, uint64_t *c, char *err, size_t errlen)
{
	char        *buf, *nl, mac[65];
	size_t       len;
	cJSON       *o, *vms, *e;
	const cJSON *x;

	if (read_file(f->path, 16u << 20, &buf, &len) < 0) {
		if (errno == ENOENT) {
			return 1;
		}
		strfmt(err, errlen, "read %s: %s", f->path, strerror(errno));
		return -1;
	}
	if ((nl = memchr(buf, '\n', len)) == NULL || nl - buf != 64) {
		strfmt(err, errlen, "%s: no MAC line", f->path);
		free(buf);
		return -1;
	}
	*nl = '\0';
	len -= 65;
	while (len > 0 && nl[len] == '\n') {
		nl[len--] = '\0';
	}
	mac_hex(f, nl + 1, strlen(nl + 1), mac);
	if (CRYPTO_memcmp(mac, buf, 64) != 0) {
		strfmt(err, errlen,
		       "%s: MAC does not verify (altered, or written under "
		       "another master key)",
		       f->path);
		free(buf);
		return -1;
	}
	o = cJSON_Parse(nl + 1);
	free(buf);
	if (o == NULL ||
	    !cJSON_IsNumber(x = cJSON_GetObjectItem(o, "counter"))) {
		cJSON_Delete(o);
		strfmt(err, errlen, "%s: not a journal", f->path);
		return -1;
	}
	*c = (uint64_t) x->valuedouble;
	f->nvms = 0;
	vms = cJSON_GetObjectItem(o, "vms");
	cJSON_ArrayForEach(e, vms)
	{
		struct fresh_vm *v;

		if (!uuid_valid(e->string) ||
		    (v = vm_find(f, e->string, true)) == NULL) {
			continue;
		}
		if (cJSON_IsNumber(x = cJSON_GetObjectItem(e, "gen"))) {
			v->gen = (int64_t) x->valuedouble;
		}
		if (cJSON_IsString(x = cJSON_GetObjectItem(e, "sha"))) {
			strfmt(v->sha, sizeof(v->sha), "%s", x->valuestring);
		}
		if (cJSON_IsString(x = cJSON_GetObjectItem(e, "bak"))) {
			strfmt(v->bak, sizeof(v->bak), "%s", x->valuestring);
		}
		v->running = cJSON_IsTrue(cJSON_GetObjectItem(e, "running"));
		v->suspect = cJSON_IsTrue(cJSON_GetObjectItem(e, "suspect"));
		v->accept = cJSON_IsTrue(cJSON_GetObjectItem(e, "accept"));
	}
	cJSON_Delete(o);
	return 0;
}

/* A checkpoint: journal with counter+1, then the NV increment. Call with
 * f->mu held. */
static int
checkpoint(struct fresh *f, char *err, size_t errlen)
{
	struct tpm *t;
	ESYS_TR     h = ESYS_TR_NONE;
	int         rc = -1;

	if ((t = broker_tpm_lock(f->b)) == NULL) {
		strfmt(err, errlen, "hardware TPM unavailable");
		goto out;
	}
	if (nv_handle(f, t, &h, false, NULL, err, errlen) != 0) {
		goto out;
	}
	if (journal_store(f, f->counter + 1, err, errlen) < 0) {
		goto out;
	}
	crash_point("fresh-journal");
	if (nv_increment(f, t, h, err, errlen) < 0) {
		goto out;
	}
	f->counter++;
	f->dirty = false;
	f->last_ck_ms = now_ms();
	crash_point("fresh-counter");
	rc = 0;
out:
	if (h != ESYS_TR_NONE && t != NULL) {
		(void) Esys_TR_Close(t->ectx, &h);
	}
	broker_tpm_unlock(f->b);
	return rc;
}

/* Load (once): the journal against the NV counter. f->mu held. */
static int
ensure_loaded(struct fresh *f, char *err, size_t errlen)
{
	struct tpm *t;
	ESYS_TR     h = ESYS_TR_NONE;
	uint64_t    jc = 0, nv = 0;
	int         jr, nr = 0, rc = -1;
	bool        have_key, created = false;

	if (f->loaded) {
		return 0;
	}
	pthread_mutex_lock(&f->key_mu);
	have_key = f->have_key;
	pthread_mutex_unlock(&f->key_mu);
	if (!have_key) {
		strfmt(err, errlen, "journal key not derived yet (no unseal)");
		return -1;
	}
	jr = journal_load(f, &jc, err, errlen);
	if (jr < 0) {
		return -1;
	}
	if ((t = broker_tpm_lock(f->b)) == NULL) {
		strfmt(err, errlen, "hardware TPM unavailable");
		goto out;
	}
	nr = nv_handle(f, t, &h, jr == 1, &created, err, errlen);
	if (nr < 0) {
		goto out;
	}
	if (nr == 1) {
		/* a journal but no counter: the TPM was cleared, or the
		 * journal is not this TPM's */
		f->stale = true;
		strfmt(f->stale_why, sizeof(f->stale_why),
		       "the journal names counter %" PRIu64
		       " but NV counter 0x%x does not exist (TPM cleared?)",
		       jc, f->b->cfg.fresh_nv);
		nv = 0;
	} else if ((nr = nv_read(f, t, h, &nv, err, errlen)) < 0) {
		goto out;
	} else if (nr == 1) {
		if (nv_increment(f, t, h, err, errlen) < 0 ||
		    nv_read(f, t, h, &nv, err, errlen) != 0) {
			goto out;
		}
	}
	if (jr == 1) {
		if (!created) {
			/* the counter exists, its journal does not: deleted,
			 * or /persist put back from before it existed */
			f->missing = true;
			log_warnx("freshness: ROLLBACK: %s is missing but NV "
			          "counter 0x%x exists: every existing state "
			          "needs vtpmctl accept-rollback",
			          f->path, f->b->cfg.fresh_nv);
		}
		f->counter = nv;
		f->nvms = 0;
		if (journal_store(f, nv, err, errlen) < 0) {
			goto out;
		}
		log_info("freshness: new journal %s at counter %" PRIu64,
		         f->path, nv);
	} else if (!f->stale && jc == nv + 1) {
		/* a checkpoint was cut between its journal and its NV write */
		if (nv_increment(f, t, h, err, errlen) < 0) {
			goto out;
		}
		log_warnx("freshness: completed an interrupted checkpoint "
		          "(counter %" PRIu64 ")",
		          jc);
		f->counter = jc;
	} else if (!f->stale && jc != nv) {
		f->stale = true;
		strfmt(f->stale_why, sizeof(f->stale_why),
		       "the broker's journal is older than the hardware TPM: "
		       "expected counter %" PRIu64 ", found %" PRIu64,
		       nv, jc);
	} else {
		f->counter = jc;
	}
	if (f->stale) {
		/* every VM it names is suspect; the journal is re-anchored to
		 * the counter so that accepting one VM does not trust the
		 * others */
		for (int i = 0; i < f->nvms; i++) {
			f->vms[i].suspect = true;
		}
		log_warnx("freshness: ROLLBACK: %s; every VM it names needs "
		          "vtpmctl accept-rollback",
		          f->stale_why);
		f->counter = nv;
	}
	f->loaded = true;
	rc = 0;
out:
	if (h != ESYS_TR_NONE && t != NULL) {
		(void) Esys_TR_Close(t->ectx, &h);
	}
	broker_tpm_unlock(f->b);
	if (rc == 0 && f->stale) {
		char e2[REASON_LEN];

		if (checkpoint(f, e2, sizeof(e2)) < 0) {
			log_warnx("freshness: re-anchor: %s", e2);
		}
	}
	return rc;
}

/* ---- the requests ---- */

static void
rep_init(struct fresh *f, const struct fresh_req *rq, struct fresh_rep *rp,
         int status)
{
	memset(rp, 0, sizeof(*rp));
	strfmt(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	rp->status = status;
	rp->found = rq->generation;
	rp->expected = -1;
	rp->counter = (int64_t) f->counter;
	rp->nv_writes = (int64_t) f->nv_writes;
}

static void
anchor(struct fresh_vm *v, const struct fresh_req *rq, bool running)
{
	v->gen = rq->generation;
	strfmt(v->sha, sizeof(v->sha), "%s", rq->sha256);
	strfmt(v->bak, sizeof(v->bak), "%s", rq->backup_sha256);
	v->running = running;
	v->suspect = false;
	v->accept = false;
}

/* The verdict on a state about to run (f->mu held, journal loaded). */
static int
verdict(struct fresh_vm *v, const struct fresh_req *rq, struct fresh_rep *rp)
{
	rp->expected = v->gen;
	if (v->accept) {
		strfmt(rp->reason, sizeof(rp->reason),
		       "older state accepted by the operator (journal had "
		       "generation %" PRId64 ", found %" PRId64 ")",
		       v->gen, rq->generation);
		return FRESH_OK;
	}
	if (v->suspect) {
		strfmt(rp->reason, sizeof(rp->reason),
		       "rollback: the broker's journal was replayed or lost, "
		       "generation %" PRId64
		       " cannot be trusted (found %" PRId64
		       "); vtpmctl accept-rollback %s to accept it",
		       v->gen, rq->generation, v->uuid);
		return FRESH_ROLLBACK;
	}
	if (rq->generation == v->gen && strcmp(rq->sha256, v->sha) == 0) {
		return FRESH_OK;
	}
	if (rq->classification == STATE_RESTORED && rq->generation >= v->gen &&
	    (strcmp(rq->sha256, v->bak) == 0 ||
	     strcmp(rq->sha256, v->sha) == 0)) {
		strfmt(rp->reason, sizeof(rp->reason),
		       "restored: the guardian put back the checkpointed "
		       "generation's %s",
		       strcmp(rq->sha256, v->sha) == 0 ? "content" : "backup");
		return FRESH_OK;
	}
	if (rq->generation > v->gen && v->running) {
		/* the VM ran after the checkpoint and did not stop cleanly:
		 * newer generations (the window) */
		strfmt(rp->reason, sizeof(rp->reason),
		       "generation %" PRId64 " is newer than the checkpoint "
		       "(%" PRId64 ")",
		       rq->generation, v->gen);
		return FRESH_OK;
	}
	strfmt(rp->reason, sizeof(rp->reason),
	       "rollback: expected generation %" PRId64 " (sha256 %.12s), "
	       "found generation %" PRId64 " (sha256 %.12s)",
	       v->gen, v->sha, rq->generation,
	       rq->sha256[0] ? rq->sha256 : "none");
	return FRESH_ROLLBACK;
}

static int
do_check(struct fresh *f, const struct fresh_req *rq, struct fresh_rep *rp)
{
	struct fresh_vm *v = vm_find(f, rq->uuid, false);
	char             err[REASON_LEN];
	int              st;

	if (v == NULL) {
		if (f->missing && rq->classification != STATE_NEW &&
		    rq->classification != STATE_RESET) {
			strfmt(rp->reason, sizeof(rp->reason),
			       "rollback: the broker's journal is missing "
			       "while its NV counter exists; found generation "
			       "%" PRId64 "; vtpmctl accept-rollback %s to "
			       "accept it",
			       rq->generation, rq->uuid);
			/* remember it, so accept has an entry to clear */
			if ((v = vm_find(f, rq->uuid, true)) != NULL) {
				v->suspect = true;
				(void) journal_store(f, f->counter, err,
				                     sizeof(err));
			}
			return FRESH_ROLLBACK;
		}
		if ((v = vm_find(f, rq->uuid, true)) == NULL) {
			strfmt(rp->reason, sizeof(rp->reason),
			       "journal full (%d VMs)", FRESH_MAX_VMS);
			return FRESH_ERROR;
		}
		v->gen = -1;
		st = FRESH_OK;
		if (rq->classification != STATE_NEW) {
			strfmt(rp->reason, sizeof(rp->reason),
			       "enrolled at generation %" PRId64,
			       rq->generation);
		}
	} else {
		st = verdict(v, rq, rp);
	}
	if (st != FRESH_OK) {
		v->passed = false;
		log_warnx("vm %s: freshness: %s", rq->uuid, rp->reason);
		return st;
	}
	v->passed = true;
	{
		bool was_accept = v->accept;

		anchor(v, rq, true);
		/* running = true needs no NV write: a same-counter journal
		 * without it is only stricter. An accepted older state is a
		 * new anchor: checkpoint it now. */
		if (was_accept || v->gen < 0) {
			f->dirty = true;
		}
		if ((was_accept ? checkpoint(f, err, sizeof(err))
		                : journal_store(f, f->counter, err,
		                                sizeof(err))) < 0) {
			strfmt(rp->reason, sizeof(rp->reason),
			       "journal not written: %s", err);
			return FRESH_ERROR;
		}
	}
	return FRESH_OK;
}

/* Group commit: wait until a checkpoint newer than our change is done. */
static int
wait_checkpoint(struct fresh *f, char *err, size_t errlen)
{
	uint64_t my = ++f->seq;

	f->dirty = true;
	pthread_cond_broadcast(&f->cv);
	while (f->done < my && !f->quit) {
		pthread_cond_wait(&f->cv, &f->mu);
	}
	if (f->done < my) {
		strfmt(err, errlen, "broker stopping: checkpoint not written");
		return -1;
	}
	return 0;
}

int
fresh_request(struct fresh *f, const struct fresh_req *rq, bool admin,
              struct fresh_rep *rp)
{
	struct fresh_vm *v;
	char             err[REASON_LEN];
	int              st = FRESH_OK;

	if (f == NULL || f->b->no_tpm) {
		memset(rp, 0, sizeof(*rp));
		strfmt(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		rp->status = FRESH_OFF;
		rp->expected = rp->found = -1;
		strfmt(rp->reason, sizeof(rp->reason),
		       "no hardware TPM: freshness off");
		return 0;
	}
	pthread_mutex_lock(&f->mu);
	rep_init(f, rq, rp, FRESH_OK);
	if ((rq->op == FOP_ACCEPT || rq->op == FOP_STATUS) != admin) {
		rp->status = FRESH_ERROR;
		strfmt(rp->reason, sizeof(rp->reason),
		       "%s is not served on this socket",
		       fresh_op_name(rq->op));
		goto out;
	}
	if (ensure_loaded(f, err, sizeof(err)) < 0) {
		rp->status = FRESH_ERROR;
		strfmt(rp->reason, sizeof(rp->reason), "freshness: %s", err);
		goto out;
	}
	switch (rq->op) {
	case FOP_CHECK:
		st = do_check(f, rq, rp);
		break;
	case FOP_STOP:
		if ((v = vm_find(f, rq->uuid, false)) == NULL || !v->passed) {
			break; /* never anchor what did not pass a check */
		}
		anchor(v, rq, false);
		v->passed = false;
		if (wait_checkpoint(f, err, sizeof(err)) < 0) {
			st = FRESH_ERROR;
			strfmt(rp->reason, sizeof(rp->reason), "%s", err);
		}
		break;
	case FOP_FORGET:
		for (int i = 0; i < f->nvms; i++) {
			if (strcasecmp(f->vms[i].uuid, rq->uuid) == 0) {
				f->vms[i] = f->vms[--f->nvms];
				(void) wait_checkpoint(f, err, sizeof(err));
				break;
			}
		}
		break;
	case FOP_ACCEPT:
		if ((v = vm_find(f, rq->uuid, true)) == NULL) {
			st = FRESH_ERROR;
			strfmt(rp->reason, sizeof(rp->reason), "journal full");
			break;
		}
		v->accept = true;
		log_warnx("vm %s: freshness: the operator accepts the next "
		          "state found (journal had generation %" PRId64 ")",
		          rq->uuid, v->gen);
		if (journal_store(f, f->counter, err, sizeof(err)) < 0) {
			st = FRESH_ERROR;
			strfmt(rp->reason, sizeof(rp->reason), "%s", err);
			break;
		}
		rp->expected = v->gen;
		strfmt(rp->reason, sizeof(rp->reason),
		       "accepted: the next start takes the state it finds "
		       "(journal had generation %" PRId64 ")",
		       v->gen);
		break;
	case FOP_STATUS:
		if ((v = vm_find(f, rq->uuid, false)) == NULL) {
			strfmt(rp->reason, sizeof(rp->reason),
			       "not in the journal");
			break;
		}
		rp->expected = v->gen;
		strfmt(rp->reason, sizeof(rp->reason),
		       "generation %" PRId64 " sha256 %.16s%s%s%s", v->gen,
		       v->sha, v->running ? ", running" : ", stopped",
		       v->suspect ? ", suspect" : "",
		       v->accept ? ", accept pending" : "");
		break;
	default:
		st = FRESH_ERROR;
		strfmt(rp->reason, sizeof(rp->reason), "unknown op %d", rq->op);
	}
	rp->status = st;
	rp->counter = (int64_t) f->counter;
	rp->nv_writes = (int64_t) f->nv_writes;
out:
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* The checkpoint thread: batches stops (FRESH_BATCH_MS) and checkpoints
 * running VMs every --checkpoint-interval from the guardian's record. */
static void
refresh_running(struct fresh *f)
{
	struct req_client  *c = NULL;
	struct guardian_req q;
	struct guardian_rep r;
	enum msg_type       rt;
	char                e[REASON_LEN];

	if (req_client_open(&c, f->b->cfg.rundir, "guardian") < 0) {
		return;
	}
	for (int i = 0; i < f->nvms; i++) {
		struct fresh_vm *v = &f->vms[i];

		if (!v->running || v->suspect) {
			continue;
		}
		memset(&q, 0, sizeof(q));
		q.op = GOP_QUERY;
		strfmt(q.uuid, sizeof(q.uuid), "%s", v->uuid);
		if (req_client_call(c, MSG_GUARDIAN_REQ, &q, &rt, &r, 1000, e,
		                    sizeof(e)) < 0 ||
		    !r.ok || r.generation <= v->gen) {
			continue;
		}
		v->gen = r.generation;
		strfmt(v->sha, sizeof(v->sha), "%s", r.sha256);
		strfmt(v->bak, sizeof(v->bak), "%s", r.backup_sha256);
		f->dirty = true;
	}
	req_client_close(c);
}

static void *
flusher(void *arg)
{
	struct fresh *f = arg;
	char          err[REASON_LEN];

	pthread_mutex_lock(&f->mu);
	while (!f->quit) {
		uint64_t        iv = (uint64_t) f->b->cfg.checkpoint_s * 1000;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += f->seq > f->done ? 0 : 1;
		if (f->seq > f->done) {
			ts.tv_nsec += FRESH_BATCH_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
		}
		(void) pthread_cond_timedwait(&f->cv, &f->mu, &ts);
		if (f->quit) {
			break;
		}
		if (f->loaded && iv > 0 && now_ms() - f->last_ck_ms >= iv) {
			pthread_mutex_unlock(&f->mu);
			pthread_mutex_lock(&f->mu);
			refresh_running(f);
			f->last_ck_ms = now_ms();
		}
		if (f->seq > f->done || (f->dirty && f->loaded)) {
			uint64_t upto = f->seq;

			if (checkpoint(f, err, sizeof(err)) < 0) {
				log_warnx("freshness: checkpoint: %s", err);
			}
			f->done = upto; /* the journal holds them; logged */
			pthread_cond_broadcast(&f->cv);
		}
	}
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

void
fresh_set_key(struct fresh *f, const uint8_t *master)
{
	if (f == NULL) {
		return;
	}
	pthread_mutex_lock(&f->key_mu);
	if (!f->have_key &&
	    kdf_hkdf_sha256(master, SEAL_MASTER_LEN, NULL, 0,
	                    (const uint8_t *) FRESH_INFO, strlen(FRESH_INFO),
	                    f->key, KEY_LEN) == 0) {
		f->have_key = true;
	}
	pthread_mutex_unlock(&f->key_mu);
}

int
fresh_open(struct fresh **fp, struct broker *b, char *err, size_t errlen)
{
	struct fresh *f;

	*fp = NULL;
	if (b->no_tpm) {
		return 0; /* nothing to bind to */
	}
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->key = secmem_alloc(KEY_LEN)) == NULL) {
		free(f);
		strfmt(err, errlen, "freshness: out of (locked) memory");
		return -1;
	}
	f->b = b;
	pthread_mutex_init(&f->mu, NULL);
	pthread_mutex_init(&f->key_mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->last_ck_ms = now_ms();
	if (path_join(f->path, sizeof(f->path), "%s/%s", b->cfg.vault,
	              FRESH_FILE) < 0 ||
	    pthread_create(&f->thr, NULL, flusher, f) != 0) {
		strfmt(err, errlen, "freshness: cannot start");
		fresh_close(f);
		return -1;
	}
	f->thr_up = true;
	*fp = f;
	return 0;
}

void
fresh_close(struct fresh *f)
{
	if (f == NULL) {
		return;
	}
	if (f->thr_up) {
		pthread_mutex_lock(&f->mu);
		f->quit = true;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thr, NULL);
	}
	secmem_free(f->key, KEY_LEN);
	pthread_mutex_destroy(&f->mu);
	pthread_mutex_destroy(&f->key_mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

uint64_t
fresh_nv_writes(struct fresh *f)
{
	uint64_t n;

	if (f == NULL) {
		return 0;
	}
	pthread_mutex_lock(&f->mu);
	n = f->nv_writes;
	pthread_mutex_unlock(&f->mu);
	return n;
}
