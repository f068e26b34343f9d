# guest: bench/guest_boot.sh: say when init runs and whether a TPM is there
if [ -c /dev/tpm0 ]; then t=tpm; else t=none; fi
echo "E2E val ready $(cut -d' ' -f1 /proc/uptime) $t"
