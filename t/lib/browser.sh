# t/lib/browser.sh - real headless Chromium for the t/61xx browser tests.
# Source after test-lib.sh.  browser_setup installs what is missing
# (Debian's chromium, playwright-core from npm into t/browser/node_modules)
# and sets BROWSER_SKIP to a reason when it cannot; browser_run runs one
# t/browser/*.js script and folds its TAP lines into this test's numbering.

BROWSER_DIR=$(cd "$(dirname "$0")/browser" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SCREENSHOTS="${TEST_BUILD_DIR:-.}/t/artifacts/screenshots"
BROWSER_SKIP=""
export CHROMIUM SCREENSHOTS

browser_setup() {
	if ! command -v node >/dev/null 2>&1; then
		BROWSER_SKIP="node not installed"
		return
	fi
	# The browser tests run side by side (t/harness runs two at a time):
	# one installs, the other waits for it instead of racing the same
	# apt-get and npm install (the loser used to skip every step).
	exec 9>"${TMPDIR:-/tmp}/meshsync-browser-install.lock"
	flock 9
	browser_install
	flock -u 9
	exec 9>&-
}

browser_install() {
	if [ ! -x "$CHROMIUM" ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			say "installing chromium (apt-get)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
				>"$SCRATCH/apt.log" 2>&1 ||
			{ apt-get update -q >>"$SCRATCH/apt.log" 2>&1 &&
			  DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				chromium >>"$SCRATCH/apt.log" 2>&1; }
		fi
		if [ ! -x "$CHROMIUM" ]; then
			BROWSER_SKIP="chromium not installable"
			return
		fi
	fi
	if [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
		say "installing playwright-core (npm)"
		# package.json + package-lock.json pin the version.
		npm install --prefix "$BROWSER_DIR" --no-audit --no-fund \
			>"$SCRATCH/npm.log" 2>&1
		if [ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
			BROWSER_SKIP="chromium not installable (playwright-core: npm failed)"
			return
		fi
	fi
	mkdir -p "$SCREENSHOTS"
}

# browser_run SCRIPT: run t/browser/SCRIPT; every "ok - T" / "not ok - T"
# line it prints becomes one numbered test here, "#" lines pass through.
# When the browser is unavailable, each of the script's tests (it lists
# them with --list, without a browser) is reported as skipped.
browser_run() {
	local script="$BROWSER_DIR/$1" line rc
	if [ -n "$BROWSER_SKIP" ]; then
		# --list prints the titles without loading playwright.
		node "$script" --list >"$SCRATCH/browser.list" 2>/dev/null ||
			echo "browser tests" >"$SCRATCH/browser.list"
		while IFS= read -r line; do
			test_skip "$BROWSER_SKIP"
		done <"$SCRATCH/browser.list"
		test_skip "$BROWSER_SKIP"
		return 0
	fi
	node "$script" >"$SCRATCH/browser.tap" 2>"$SCRATCH/browser.err" &
	wait $!
	rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*)
			test_count=$((test_count + 1))
			echo "ok $test_count - ${line#ok - }" ;;
		"not ok - "*)
			test_count=$((test_count + 1))
			test_failed=$((test_failed + 1))
			echo "not ok $test_count - ${line#not ok - }" ;;
		"#"*)
			echo "$line" ;;
		*)
			echo "# $line" ;;
		esac
	done <"$SCRATCH/browser.tap"
	test_count=$((test_count + 1))
	if [ "$rc" -eq 0 ]; then
		echo "ok $test_count - $1 ran to the end"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $1 ran to the end (exit $rc)"
		sed 's/^/#   /' "$SCRATCH/browser.err" | tail -n 30
	fi
}
