#!/usr/bin/env bash
# The dashboard in real headless Chromium: login, adding a server, live
# activity, sync, conflicts, logs, locks, config, roles, XSS, logout.
# t/browser/dashboard.js drives the browser; its steps are numbered here.
. "$(dirname "$0")/lib/test-lib.sh"
. "$(dirname "$0")/lib/browser.sh"

XSS_NAME='<script>alert(1)</script>'

test_expect_success_here 'two nodes (a shows Paris time) with a tracked app DB' '
	init_node a && init_node b && init_node c &&
	conf_set a timezone Europe/Paris &&
	start_node a && start_node b && start_node c &&
	app_db a && app_db b &&
	"$MESHSYNC" track --dir "$b_DIR" --immediate app.db teams >/dev/null &&
	echo "ops-password-1" | "$MESHSYNC" user add --dir "$a_DIR" ops admin >/dev/null
'

test_expect_success_here 'a peer whose name is markup is pinned on a' '
	"$MESHSYNC" peer add --dir "$a_DIR" --name "$XSS_NAME" "$c_ADDR" >/dev/null &&
	"$MESHSYNC" peer list --dir "$a_DIR" | grep -qF "$XSS_NAME"
'

browser_setup
MESHSYNC="$MESHSYNC" A_URL=$a_URL A_PW=$a_PW A_DIR=$a_DIR A_ADDR=$a_ADDR \
B_URL=$b_URL B_PW=$b_PW B_DIR=$b_DIR B_ADDR=$b_ADDR \
B_NODE_ID=$(curl -s "$b_URL/api/sync/ping" | jq -r .node_id) \
OPS_PW=ops-password-1 XSS_NAME=$XSS_NAME \
	browser_run dashboard.js

test_done
