#!/usr/bin/env bash
# www/js/auto_sync.js on the demo page in real headless Chromium: one
# trigger a second after load, the shared 5 s cooldown, nothing offline,
# nothing more on a node without peers.  t/browser/auto_sync.js drives it.
. "$(dirname "$0")/lib/test-lib.sh"
. "$(dirname "$0")/lib/browser.sh"

test_expect_success_here 'a and b paired; c has no peers' '
	init_node a && init_node b && init_node c &&
	start_node a && start_node b && start_node c &&
	pair a b
'

test_expect_success 'the demo page is served as a static file' '
	curl -sf "$a_URL/sync/static/demo/index.html" >"$SCRATCH/demo.html" &&
	grep -qF "<script src=\"/sync/static/js/auto_sync.js\" defer></script>" "$SCRATCH/demo.html"
'

browser_setup
A_URL=$a_URL C_URL=$c_URL browser_run auto_sync.js

test_done
