/*
 * keyfmt.h: libkeyfmt, what the device's key broker and the controller
 * side (vtpm-verify, vtpmctl) share without sharing the broker: the size
 * of the master key and the HKDF that derives keys from it (kdf.c), the
 * vault PCR set and the update agent's prediction file (pcrset.c), and
 * the recovery-escrow record with its RSA-OAEP wrap (escrow_fmt.c).
 */
#ifndef VTPM_KEYFMT_H
#define VTPM_KEYFMT_H

#include "msg.h"

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define SEAL_MASTER_LEN   32
#define SEAL_PCR_MAX      16 /* indexes 0..15 may be sealed to */
#define SEAL_DEFAULT_PCRS "0-4,6-14"
#define KDF_INFO_PREFIX   "vtpm-state-v1"

/* kdf.c */
/* out (KEY_LEN) = HKDF-SHA256(master, salt none, info "vtpm-state-v1" ||
 * uuid). 0 or -1. */
int kdf_vm_key(const uint8_t *master, size_t mlen, const char *uuid,
               uint8_t *out, size_t outlen);
int kdf_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
                    size_t saltlen, const uint8_t *info, size_t infolen,
                    uint8_t *out, size_t outlen);

/* pcrset.c */
/* Parse the vault set "0-4,6-14" or "0,1,2,...": must hold 0, not 5, no
 * duplicates, indexes 0..15. 0 or -1 with err. */
int pcrset_parse(const char *s, uint32_t *mask, char *err, size_t errlen);
/* "0,1,2,3" into buf */
void pcrset_format(uint32_t mask, char *buf, size_t len);
/* "8,9,13" or "" into a mask (any of 0-15, no 0/5 rules). 0 or -1. */
int pcrset_list_parse(const char *s, uint32_t *mask);
/* Parse the update agent's prediction file: a JSON array of {bank:
 * "sha256", pcr: N, value: hex}. out gets the values, named the PCRs
 * given. 0 or -1 with err. */
int pcrset_parse_prediction(const char *json, size_t len,
                            struct pcr_values *out, uint32_t *named, char *err,
                            size_t errlen);

/* escrow_fmt.c: the recovery-escrow record (master.escrow.json): the
 * master wrapped with RSA-OAEP-SHA256 to a controller key. */
#define ESCROW_FILE     "master.escrow.json"
#define ESCROW_WRAP_MAX 512 /* RSA up to 4096 bits */

struct escrow_file {
	char    key_fp[65];    /* sha256 of the controller key (DER), hex */
	char    master_id[65]; /* HKDF(master, "vtpm-escrow-id-v1"), hex */
	uint8_t wrapped[ESCROW_WRAP_MAX];
	size_t  wlen;
};

int escrow_load_pubkey(const char *path, EVP_PKEY **out, char fp[65], char *err,
                       size_t errlen);
int escrow_fingerprint(EVP_PKEY *k, char fp[65]);
int escrow_wrap(EVP_PKEY *pub, const uint8_t *in, size_t inlen, uint8_t *out,
                size_t max, size_t *outlen);
/* RSA-OAEP-SHA256 unwrap of a SEAL_MASTER_LEN key into master (secmem). */
int escrow_unwrap(EVP_PKEY *priv, const uint8_t *in, size_t inlen,
                  uint8_t *master);
int escrow_master_id(const uint8_t *master, char id[65]);
int escrow_unhex(const char *s, uint8_t *out, size_t max, size_t *n);
int escrow_file_store(const char *path, const struct escrow_file *f);
int escrow_file_load(const char *path, struct escrow_file *f, char *err,
                     size_t errlen);

#endif
