# scripts/lib.sh - shared by scripts/demo and scripts/test: install what is
# missing from Debian, then build meshsync in the source tree.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)

# Build, run and test dependencies, as Debian 12 package names.
BUILD_PKGS="gcc make autoconf automake pkg-config libfcgi-dev libsqlite3-dev
	libjson-c-dev libcurl4-openssl-dev libsodium-dev"
RUN_PKGS="nginx libnginx-mod-nchan sqlite3 curl"
TEST_PKGS="jq procps wrk"

missing_pkgs() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q "install ok installed" || echo "$p"
	done
}

# install_pkgs PKG...: apt-get install only those not installed yet.
install_pkgs() {
	local missing sudo="" added_policy=""
	missing=$(missing_pkgs "$@")
	[ -n "$missing" ] || return 0
	echo "meshsync: installing missing packages:" $missing
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || {
			echo "meshsync: run as root (or install sudo) to install:" $missing >&2
			exit 1
		}
		sudo="sudo"
	fi
	# Installing nginx would start Debian's own nginx service on port 80;
	# meshsync runs its own nginx per node, so keep the service down.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		added_policy=1
	fi
	if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
		$sudo apt-get update -q
	fi
	# shellcheck disable=SC2086
	if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
		--no-install-recommends $missing; then
		$sudo apt-get update -q
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
			--no-install-recommends $missing
	fi
	[ -z "$added_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
}

# build [CONFIGURE_ARGS...]: autoreconf/configure only when needed, then make.
build() {
	cd "$TOP"
	if [ ! -x configure ] || [ configure.ac -nt configure ] ||
		[ Makefile.am -nt Makefile.in ]; then
		autoreconf -fi
	fi
	if [ ! -f Makefile ] || [ configure -nt config.status ] ||
		[ "$(cat .configure-args 2>/dev/null)" != "$*" ]; then
		./configure -q "$@"
		echo "$*" >.configure-args
	fi
	make -j"$(nproc)" -s
}
