# build/ports.sh: sourced by build/stack.sh and tests/lib.sh.
# free_port prints a TCP port P with P and P+1 both unused (swtpm's control
# channel is on P+1). Ports come from below the kernel's ephemeral range
# (ip_local_port_range, 32768-60999 by default): there an outgoing
# connection of anyone on the machine may take the port between our check
# and swtpm's bind, which made parallel tests flaky.
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[ "${lo:-0}" -gt 20100 ] 2>/dev/null || lo=32768
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % (lo - 20001)))
		# in no state at all (TIME_WAIT too: swtpm's bind would fail)
		if command -v ss >/dev/null; then
			[ -z "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ] || continue
		fi
		if ! (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null &&
			! (echo >/dev/tcp/127.0.0.1/$((p + 1))) 2>/dev/null; then
			echo $p
			return 0
		fi
	done
	return 1
}
