# guest: an ephemeral vTPM starts empty every boot
h=$(tpm2_getcap handles-persistent 2>&1 | tr '\n' ' ')
e2e_check "no persistent handle from the previous boot (have: '$h')" \
	sh -c "! echo '$h' | grep -q 0x81"
