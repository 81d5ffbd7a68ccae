# net.sh - sourced by the tests (test-lib.sh) and the benchmarks.

# A free address:port on a random loopback address (all of 127/8 is local
# on Linux), so tests and benchmarks running side by side never pick the
# same one.
free_addr() {
	local a p
	while :; do
		a="127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/$a/$p") 2>/dev/null; then
			echo "$a:$p"
			return
		fi
	done
}
