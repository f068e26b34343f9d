#!/bin/bash
# build/hwtpm.sh start|stop|status --dir DIR --port P [--maker-ca CA]
#                [--no-ek-cert]
# The simulated hardware TPM: a real swtpm (TPM 2.0) serving TPM commands
# on TCP port P and its control channel on P+1, state and pid file in DIR.
# TCTI for it: swtpm:host=127.0.0.1,port=P.
#   start: starts it (daemon) and waits until it answers a TPM command.
#          A new state (no DIR/tpm2-00.permall) is manufactured first, as
#          a TPM maker does: swtpm_setup --create-ek-cert with
#          swtpm_localca makes the RSA-2048 EK (0x81010001) and an ECC EK,
#          their EK certificates in NV (0x01c00002 RSA, 0x01c00016 ECC
#          P-384, write-locked), issued by the "manufacturer" CA in CA
#          (default DIR/maker-ca; created on first use: a root and an
#          intermediate, swtpm_localca's layout). Its public certificates
#          go to CA/certs/ (root.pem, intermediate.pem): the directory a
#          verifier trusts (vtpm-verify --tpm-ca CA/certs). Several
#          devices from one maker share one CA. --no-ek-cert: a bare
#          state, no EK certificate (a TPM whose maker ships none).
#   stop:  stops it by the pid in DIR/swtpm.pid (TERM, then KILL)
set -u

usage() {
	echo "usage: $0 start|stop|status --dir DIR --port P [--maker-ca CA] [--no-ek-cert]" >&2
	exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
dir="" port="" ca="" ekcert=1
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=${2:-}; shift 2 ;;
	--port) port=${2:-}; shift 2 ;;
	--maker-ca) ca=${2:-}; shift 2 ;;
	--no-ek-cert) ekcert=0; shift ;;
	-h | --help) usage ;;
	*) echo "hwtpm: unknown option $1" >&2; usage ;;
	esac
done
[ -n "$dir" ] || usage
mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd) # swtpm --daemon chdirs to /: absolute paths only
pidfile=$dir/swtpm.pid

running() {
	local pid
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null
}

# A TPM command answers: TPM2_GetRandom(8) over the data port.
answers() {
	exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
	printf '\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08' >&3
	local r
	r=$(timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
	exec 3>&-
	# tag 8001, size 0x14, rc 0
	[ "$r" = "80010000001400000000" ]
}

# The maker's CA configuration for swtpm_localca (paths absolute).
maker_config() {
	mkdir -p "$ca/certs" || return 1
	[ -s "$ca/swtpm-localca.conf" ] || cat >"$ca/swtpm-localca.conf" <<-EOF
		statedir = $ca
		signingkey = $ca/signkey.pem
		issuercert = $ca/issuercert.pem
		certserial = $ca/certserial
	EOF
	[ -s "$ca/swtpm-localca.options" ] || cat >"$ca/swtpm-localca.options" <<-EOF
		--platform-manufacturer vtpm-sim
		--platform-version 2.0
		--platform-model vtpm-sim
	EOF
	cat >"$ca/swtpm_setup.conf" <<-EOF
		create_certs_tool = $(command -v swtpm_localca)
		create_certs_tool_config = $ca/swtpm-localca.conf
		create_certs_tool_options = $ca/swtpm-localca.options
		active_pcr_banks = sha256
	EOF
}

# Manufacture a new state: EKs and their certificates from the maker CA.
manufacture() {
	command -v swtpm_setup >/dev/null && command -v swtpm_localca >/dev/null || {
		echo "hwtpm: swtpm_setup/swtpm_localca not installed (swtpm-tools)" >&2
		return 1
	}
	maker_config || return 1
	swtpm_setup --tpm2 --tpmstate "$dir" --config "$ca/swtpm_setup.conf" \
		--create-ek-cert --lock-nvram --overwrite \
		--logfile "$dir/swtpm_setup.log" >/dev/null 2>&1 || {
		echo "hwtpm: swtpm_setup failed (see $dir/swtpm_setup.log)" >&2
		return 1
	}
	cp "$ca/swtpm-localca-rootca-cert.pem" "$ca/certs/root.pem" &&
		cp "$ca/issuercert.pem" "$ca/certs/intermediate.pem" || return 1
	echo "hwtpm: manufactured $dir: EK certificates from the maker CA in $ca (trust $ca/certs)"
}

case "$cmd" in
start)
	[ -n "$port" ] || usage
	if running; then
		echo "hwtpm: already running (pid $(cat "$pidfile")) in $dir" >&2
		exit 1
	fi
	rm -f "$pidfile"
	if [ $ekcert = 1 ] && [ ! -e "$dir/tpm2-00.permall" ]; then
		[ -n "$ca" ] || ca=$dir/maker-ca
		mkdir -p "$ca" || exit 1
		ca=$(cd "$ca" && pwd)
		manufacture || exit 1
	fi
	swtpm socket --tpm2 \
		--server type=tcp,port="$port",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear \
		--tpmstate dir="$dir" \
		--pid file="$pidfile" \
		--log file="$dir/swtpm.log",level=1 \
		--daemon || {
		echo "hwtpm: swtpm failed to start (see $dir/swtpm.log)" >&2
		exit 1
	}
	for _ in $(seq 100); do
		if running && answers; then
			echo "hwtpm: swtpm pid $(cat "$pidfile") on 127.0.0.1:$port (ctrl $((port + 1))), state $dir"
			exit 0
		fi
		sleep 0.05
	done
	echo "hwtpm: swtpm on port $port does not answer" >&2
	running && kill -TERM "$(cat "$pidfile")"
	exit 1
	;;
stop)
	if ! running; then
		rm -f "$pidfile"
		exit 0
	fi
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$pidfile"
	exit 0
	;;
status)
	if running; then
		echo "running pid $(cat "$pidfile")"
		exit 0
	fi
	echo "stopped"
	exit 1
	;;
*) usage ;;
esac
