#!/bin/bash
# The key broker on a simulated hardware TPM filled the way EVE-OS's
# tpmmgr fills it (pkg/pillar/evetpm/tpm.go, cmd/tpmmgr: EK 0x81000001,
# SRK 0x81000002, AIK 0x81000003, quote key 0x81000004, ECDH key
# 0x81000005, device key 0x817FFFFF, its NV indices): with the default
# handles it starts, provisions beside them, releases keys and leaves
# every one of EVE's objects and NV indices as it was (names and contents
# compared); with --srk-handle 0x81000002 it seals under EVE's SRK; a
# configured handle that holds another kind of object is refused and the
# object is kept; a blob sealed under one SRK handle names it when the
# broker is started with another.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/keybroker_common.bash"

command -v swtpm >/dev/null || skip_all "swtpm not installed"
command -v tpm2_createprimary >/dev/null || skip_all "tpm2-tools not installed"
[ -x "$BIN/vtpm-keybroker" ] && [ -x "$BIN/key_call" ] || skip_all "build first (make all)"
U=7b000000-0000-4000-8000-000000000001

check "simulated hardware TPM starts" hw_start
TPM_FIXED=1
T() { "$@" -T "$TCTI" -Q; }
persist() { # persist HANDLE HIERARCHY ALG ATTRS: a primary, made persistent
	T tpm2_createprimary -C "$2" -G "$3" -a "$4" -c "$T_TMP/p.ctx" &&
		T tpm2_evictcontrol -C o -c "$T_TMP/p.ctx" "$1" &&
		T tpm2_flushcontext -t
}
# EVE's templates (evetpm/tpm.go): DefaultEkTemplate (TCG EK, RSA-2048),
# DefaultSrkTemplate (RSA-2048 restricted decrypt, AES-128-CFB, noDA),
# DefaultAikTemplate (RSA-2048 restricted RSASSA-SHA256),
# DefaultQuoteKeyTemplate (P-256 restricted ECDSA-SHA256),
# DefaultEcdhKeyTemplate (P-256 sign|decrypt); the device key is a P-256
# signing key
ok_fill=0
T tpm2_createek -c 0x81000001 -G rsa -u "$T_TMP/ek.pub" &&
	persist 0x81000002 o rsa2048:null:aes128cfb 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda' &&
	persist 0x81000003 o rsa2048:rsassa-sha256:null 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda' &&
	persist 0x81000004 o ecc256:ecdsa-sha256:null 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda' &&
	persist 0x81000005 o ecc256:null:null 'sensitivedataorigin|userwithauth|sign|decrypt|noda' &&
	persist 0x817FFFFF o ecc256:ecdsa-sha256:null 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda' &&
	ok_fill=1
# EVE's NV indices: device cert, TPM credentials, sealed disk key
for nv in 0x1500000 0x1600000 0x1800000 0x1900000; do
	T tpm2_nvdefine "$nv" -C o -s 64 -a 'ownerread|ownerwrite' &&
		head -c 64 /dev/urandom >"$T_TMP/nv.$nv" &&
		T tpm2_nvwrite "$nv" -C o -i "$T_TMP/nv.$nv" || ok_fill=0
done
check "TPM filled with EVE's objects and NV indices" test $ok_fill = 1
EVE_H="0x81000001 0x81000002 0x81000003 0x81000004 0x81000005 0x817fffff"
snapshot() { # names of EVE's objects and its NV contents, one line each
	local h nv
	for h in $EVE_H; do
		echo "$h $(tpm2_readpublic -T "$TCTI" -c "$h" 2>/dev/null | awk '/^name:/{print $2}')"
	done
	for nv in 0x1500000 0x1600000 0x1800000 0x1900000; do
		echo "$nv $(tpm2_nvread -T "$TCTI" -C o "$nv" 2>/dev/null | sha256sum | cut -c1-64)"
	done
}
snapshot >"$T_TMP/before"
check "every EVE object has a name before the broker runs" \
	bash -c "[ \$(awk 'NF == 2 && length(\$2) > 60' '$T_TMP/before' | wc -l) = 10 ]"

# --- default handles: beside EVE's ---
kb_start --tcti "$TCTI"
check "KeyBrokerStatus READY with the default handles" wait_for 10 status_is '^state READY'
call $U
check "a key is released (default handles)" test "$ST" = ok
check "provisioned under our own SRK 0x81000100" grep -q "sealed under SRK 0x81000100" "$KBLOG"
check "attestation EK 0x81010001 and AK 0x81010002 made beside EVE's" \
	grep -q "EK 0x81010001 created, AK 0x81010002 created" "$KBLOG"
kb_stop
snapshot >"$T_TMP/after"
check "EVE's objects and NV indices untouched (names and contents)" diff "$T_TMP/before" "$T_TMP/after"
check "every persistent handle is EVE's or ours" \
	bash -c "[ \"\$(tpm2_getcap -T '$TCTI' handles-persistent | tr -d ' -' | sort | tr '\n' ' ')\" = '0x81000001 0x81000002 0x81000003 0x81000004 0x81000005 0x81000100 0x81010001 0x81010002 0x817FFFFF ' ]"

# --- a blob sealed under one SRK, a broker told another ---
kb_start --tcti "$TCTI" --srk-handle 0x81000002
check "blob sealed under 0x81000100, --srk-handle 0x81000002: ERROR naming both" \
	wait_for 10 status_is '^state ERROR .*sealed under the SRK at 0x81000100, but --srk-handle is 0x81000002'
kb_stop

# --- sharing EVE's SRK ---
rm -rf "$ROOT/persist/vtpm"
kb_start --tcti "$TCTI" --srk-handle 0x81000002 --ek-handle 0x81010011 --ak-handle 0x81010012
check "READY sealed under EVE's SRK 0x81000002" wait_for 10 status_is '^state READY'
check "EVE's RSA SRK reused, not replaced" grep -q "reusing the RSA storage key at 0x81000002" "$KBLOG"
call $U
check "a key is released under EVE's SRK" test "$ST" = ok
check "the blob names the SRK it is sealed under" \
	bash -c "jq -e '.srk == \"0x81000002\"' '$ROOT/persist/vtpm/master.sealed.json' >/dev/null"
kb_stop
snapshot >"$T_TMP/after2"
check "EVE's objects untouched after sealing under its SRK" diff "$T_TMP/before" "$T_TMP/after2"

# --- a blob sealed under another SRK, no --srk-handle given: the broker
# follows the blob (a device sealed before the default moved keeps its key)
call_sha_eve=$SHA
kb_start --tcti "$TCTI" --ek-handle 0x81010011 --ak-handle 0x81010012
check "no --srk-handle, blob under 0x81000002: READY" wait_for 10 status_is '^state READY'
check "... says it follows the blob's SRK" \
	grep -q "is sealed under the SRK at 0x81000002: using that handle" "$KBLOG"
call $U
check "... and releases the same key as before" test "$ST" = ok -a "$SHA" = "$call_sha_eve"
kb_stop

# --- configured handles that hold other kinds of objects ---
rm -rf "$ROOT/persist/vtpm"
kb_start --tcti "$TCTI" --srk-handle 0x81000003
check "--srk-handle at EVE's AIK: ERROR, a signing key, refused" \
	wait_for 10 status_is '^state ERROR .*0x81000003 (--srk-handle) holds a signing key, not a storage key to seal under: refusing to use or replace it'
call $U
check "... and the release answers error" test "$ST" = error
kb_stop
kb_start --tcti "$TCTI" --ek-handle 0x81000004 --ak-handle 0x81000005
check "--ek-handle at EVE's quote key: refused naming the handle" \
	wait_for 10 grep -q "0x81000004 holds a key that is not an RSA-2048 EK" "$KBLOG"
kb_stop
kb_start --tcti "$TCTI" --ak-handle 0x81000005
check "--ak-handle at EVE's ECDH key: refused naming the handle" \
	wait_for 10 grep -q "0x81000005 holds a key that is not a restricted fixedTPM signing key" "$KBLOG"
kb_stop
snapshot >"$T_TMP/after3"
check "refused objects left as they were" diff "$T_TMP/before" "$T_TMP/after3"

check_fails "bad handle option: exit 2 naming the range" 2 \
	'--srk-handle: "0x1500000" is not a persistent handle \(0x81000000-0x81FFFFFF\)' \
	"$BIN/vtpm-keybroker" --root "$ROOT" --tcti none --srk-handle 0x1500000 -n
check_fails "two roles on one handle: exit 2 naming them" 2 \
	'SRK 0x81000100, EK 0x81010001 and AK 0x81010001 must be three different handles' \
	"$BIN/vtpm-keybroker" --root "$ROOT" --tcti none --ak-handle 0x81010001 -n
hw_stop >/dev/null
t_done
