/* main.c - the meshsync executable: a table of subcommands, like git. */
#include <sys/resource.h>

#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <sqlite3.h>

#include "cmd.h"
#include "keys.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

const struct cmd cmd_table[] = {
	{ .name = "init", .fn = cmd_init,
	  .summary = "create a node directory, identity and superadmin",
	  .usage = "usage: meshsync init [--dir DIR] [--name NAME] "
	    "[--listen ADDR:PORT]\n"
	    "                     [--admin-password-file FILE]\n\n"
	    "Creates DIR (default " CMD_DEFAULT_DIR ") with meshsync.conf "
	    "(every key, defaults\ncommented), the state DB, the node's Ed25519 "
	    "key pair and the superadmin\nuser 'admin'.  The password is random "
	    "and printed once, unless read from\nFILE (first line).  Refuses an "
	    "existing node and changes nothing.\n" },
	{ .name = "up", .fn = cmd_up,
	  .summary = "run a node in the foreground: nginx, pool and worker",
	  .usage = "usage: meshsync up [--dir DIR] [--quiet]\n\n"
	    "Renders the nginx config into DIR/run, starts nginx, the FastCGI "
	    "pool and the\nsync worker, and supervises them.  Ctrl-C or SIGTERM "
	    "stops all of them.\nEnvironment: MESHSYNC_NGINX overrides the nginx "
	    "binary.\n" },
	{ .name = "fcgi", .fn = cmd_fcgi,
	  .summary = "run the FastCGI pool (started by up)",
	  .usage = "usage: meshsync fcgi [--dir DIR]\n\n"
	    "Pre-forks `workers` request workers on DIR/run/fcgi.sock and "
	    "replaces any\nthat dies.  Normally started by `meshsync up`.\n" },
	{ .name = "worker", .fn = cmd_worker,
	  .summary = "run the sync worker (started by up)",
	  .usage = "usage: meshsync worker [--dir DIR]\n\n"
	    "The one process per node that syncs with peers.  Normally started "
	    "by\n`meshsync up`.\n" },
	{ .name = "status", .fn = cmd_status,
	  .summary = "show this node, its processes and peers",
	  .usage = "usage: meshsync status [--dir DIR] [--json]\n" },
	{ .name = "user", .fn = cmd_user,
	  .summary = "manage dashboard users",
	  .usage = "usage: meshsync user add [--dir DIR] NAME ROLE "
	    "[--password-file FILE]\n"
	    "       meshsync user passwd [--dir DIR] NAME [--password-file FILE]\n"
	    "       meshsync user del [--dir DIR] NAME\n"
	    "       meshsync user list [--dir DIR]\n\n"
	    "ROLE is superadmin or admin.  Without --password-file the password "
	    "is read\nfrom standard input (first line).\n" },
	{ .name = "peer", .fn = cmd_peer,
	  .summary = "pair with other nodes by address",
	  .usage = "usage: meshsync peer add [--dir DIR] ADDRESS [--name NAME] "
	    "[--bootstrap]\n"
	    "       meshsync peer list [--dir DIR]\n"
	    "       meshsync peer check|enable|disable|remove|repin [--dir DIR] PEER\n\n"
	    "ADDRESS is an IP or domain with an optional :port or http(s):// "
	    "prefix.\n`add` fetches the node's identity and pins its public key "
	    "(trust on first\nuse); the pair is connected once the other node "
	    "has added this one too.\n`repin` accepts a changed key of an "
	    "existing peer.  PEER is a name, node id\nor number from `list`.\n"
	    "--bootstrap starts this (new, empty) node's databases from the "
	    "peer's\nsnapshots, then follows its changes.\n" },
	{ .name = "track", .fn = cmd_track,
	  .summary = "capture changes of application tables",
	  .usage = "usage: meshsync track [--dir DIR] [--immediate] DB TABLE...\n\n"
	    "Installs capture triggers on TABLEs of DB (a SQLite file in the "
	    "instance\nfolder, e.g. app.db) so every committed insert, update "
	    "and delete by any\nwriter is logged for sync.  Idempotent; run it "
	    "again after adding columns.\nTables need a primary key.  DB is "
	    "added to `databases` in meshsync.conf.\n--immediate marks the "
	    "tables for sync within a second of commit.\n" },
	{ .name = "untrack", .fn = cmd_untrack,
	  .summary = "stop capturing changes of tables",
	  .usage = "usage: meshsync untrack [--dir DIR] DB TABLE...\n" },
	{ .name = "sync", .fn = cmd_sync,
	  .summary = "sync now with one or every peer, both ways",
	  .usage = "usage: meshsync sync [--dir DIR] [--peer PEER | --all] "
	    "[--json]\n\nPulls each peer's changes, pushes ours, and reports "
	    "'N sent, M received,\nK conflicts' per peer.  Exit status 1 when "
	    "any peer failed.\n" },
	{ .name = "lock", .fn = cmd_lock,
	  .summary = "take, renew, release and list leases",
	  .usage = "usage: meshsync lock acquire [--dir DIR] RESOURCE OWNER "
	    "[--ttl S]\n"
	    "       meshsync lock renew [--dir DIR] RESOURCE OWNER TOKEN "
	    "[--ttl S]\n"
	    "       meshsync lock release [--dir DIR] RESOURCE OWNER\n"
	    "       meshsync lock list [--dir DIR]\n\n"
	    "Leases in the state DB, the same ones /api/sync/lock/* hands "
	    "out.  acquire\nprints the fencing token (it only grows, per "
	    "resource, across releases and\nrestarts); a lease held by "
	    "another owner is refused with its holder and\nexpiry (status 1)."
	    "  TTL is 1..3600 seconds (default and cap 3600).\n"
	    "list reaps expired leases first.\n" },
	{ .name = "compact", .fn = cmd_compact,
	  .summary = "drop change-log entries every peer has",
	  .usage = "usage: meshsync compact [--dir DIR]\n\n"
	    "Asks every peer how far it has synced each database and removes "
	    "the change\nlog entries all of them have.  Nothing is removed "
	    "when a peer cannot be\nasked.  The worker does this once a day.\n" },
	{ .name = "update", .fn = cmd_update,
	  .summary = "push the application to peers; status; rollback",
	  .usage = "usage: meshsync update push [--dir DIR] (--peer PEER | --all) "
	    "[--no-wait]\n"
	    "       meshsync update status [--dir DIR] [--json]\n"
	    "       meshsync update rollback [--dir DIR]\n\n"
	    "push: sends this node's app_dir as a release to PEER or every "
	    "enabled peer.\nEach target must run a meshsync that speaks "
	    "protocol 2 (\"update\" in its\nping); an older one is refused "
	    "with what it lacks and nothing is sent.  The\ntarget fetches "
	    "only changed files, verifies every hash, keeps the instance\n"
	    "folder, the node dir and `preserve` globs, swaps the tree in "
	    "(the old one\ngoes to its backups/), runs the first "
	    "post_update_scripts entry that exists\nand polls health_url; "
	    "a failed check restores the backup.  push prints each\n"
	    "target's progress until it ends; exit 1 unless all are healthy "
	    "(or done,\nwithout health_url).  This node must be running "
	    "(`meshsync up`).\n"
	    "status: updates sent and received, backups, a half-done swap.\n"
	    "rollback: finishes or undoes a swap cut short by a crash; "
	    "otherwise puts the\nnewest backup back and runs the post-update "
	    "script.\n"
	    "(`meshsync update apply --dir DIR --id ID` is run by the pool; "
	    "not for hand use.)\n" },
	{ .name = "demo", .fn = cmd_demo,
	  .summary = "run a local 3-node demo mesh with sample data",
	  .usage = "usage: meshsync demo [--dir DIR] [--port BASE] [--host ADDR]\n\n"
	    "Creates (or reuses) three nodes under DIR (default ./var/demo) on "
	    "ADDR\n(default 127.0.0.1) ports BASE..BASE+2 (default 8701), with a sample "
	    "application database and\nfiles, and runs them until Ctrl-C.\n" },
	{ .name = NULL },
};

const struct cmd *
cmd_find(const char *name)
{
	for (const struct cmd *c = cmd_table; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int
cmd_usage(const struct cmd *cmd, int to_stderr)
{
	fputs(cmd->usage, to_stderr ? stderr : stdout);
	return to_stderr ? 2 : 0;
}

static int
usage(FILE *f)
{
	fprintf(f, "usage: meshsync COMMAND [options]   (meshsync COMMAND "
	    "--help for details)\n\nCommands:\n");
	for (const struct cmd *c = cmd_table; c->name != NULL; c++)
		fprintf(f, "  %-8s %s\n", c->name, c->summary);
	return f == stderr ? 2 : 0;
}

int
main(int argc, char **argv)
{
	const struct cmd *cmd;

#if defined(__GLIBC__) && defined(M_MXFAST)
	/*
	 * A sync batch is a json-c tree of tens of thousands of small
	 * objects.  Freed into glibc's fastbins, they were merged again by
	 * malloc_consolidate at the next large allocation: 10% of a pull's
	 * CPU.  Without fastbins a pull runs 20% faster (t/bench/3002).
	 */
	mallopt(M_MXFAST, 0);
#endif
	/*
	 * SQLite counts every allocation for sqlite3_memory_used(), which
	 * nothing here reads, under a global mutex: 4% of a sync's
	 * instructions.  Before any connection exists, so it cannot fail
	 * for being late; if it did, the counting would simply go on.
	 */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return usage(stdout);
	if (strcmp(argv[1], "--version") == 0) {
		printf("meshsync %s\n", PACKAGE_VERSION);
		return 0;
	}
	if ((cmd = cmd_find(argv[1])) == NULL) {
		fprintf(stderr, "meshsync: unknown command '%s'\n", argv[1]);
		return usage(stderr);
	}
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return cmd_usage(cmd, 0);
	/* A manifest page keeps a descriptor or two per file in flight;
	 * the default soft limit (1024) is too small for that. */
	{
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (keys_init() == -1) {
		fprintf(stderr, "meshsync: libsodium failed to initialise\n");
		return 1;
	}
	return cmd->fn(argc - 1, argv + 1);
}
