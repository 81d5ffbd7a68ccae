/* cmd_demo.c - `meshsync demo`: three local nodes with a sample scouting app, for newcomers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cmd.h"
#include "node.h"
#include "peer.h"
#include "peers.h"
#include "util.h"

#define DEMO_NODES	3
#define DEMO_READY_MS	20000

static const char *const demo_names[DEMO_NODES] = { "alpha", "bravo",
    "charlie" };

/* The sample application: a robotics scouting app's tables and a few rows
 * that differ per node, so the first sync has something to carry. */
static const char demo_schema[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE IF NOT EXISTS teams ("
    "  number INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);"
    "CREATE TABLE IF NOT EXISTS reports ("
    "  id TEXT PRIMARY KEY, team INTEGER NOT NULL, match INTEGER NOT NULL,"
    "  auto_points INTEGER, notes TEXT, scout TEXT, created_at TEXT);"
    "INSERT OR IGNORE INTO teams VALUES (254, 'The Cheesy Poofs', 'San Jose');"
    "INSERT OR IGNORE INTO teams VALUES (1114, 'Simbotics', 'St. Catharines');"
    "INSERT OR IGNORE INTO teams VALUES (2056, 'OP Robotics', 'Stoney Creek');";

static int
demo_sample(const char *node_dir, const char *name, char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], sql[512], text[256];
	sqlite3 *db = NULL;
	char *msg = NULL;

	util_fmt(path, sizeof(path), "%s/instance/app.db", node_dir);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		goto dberr;
	util_fmt(sql, sizeof(sql), "INSERT OR IGNORE INTO reports VALUES "
	    "('%s-1', 254, 1, 12, 'fast intake, scored from %s''s stands', "
	    "'%s', strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ','now'))", name, name,
	    name);
	if (sqlite3_exec(db, demo_schema, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		goto dberr;
	sqlite3_close(db);

	util_fmt(path, sizeof(path), "%s/instance/uploads", node_dir);
	if (util_mkdirs(path, 0755) == -1)
		goto syserr;
	util_fmt(path, sizeof(path), "%s/instance/uploads/robot-photo-%s.txt",
	    node_dir, name);
	util_fmt(text, sizeof(text), "A photo of a robot, taken at %s.\n",
	    name);
	if (util_write_file_atomic(path, text, strlen(text), 0644) == -1)
		goto syserr;
	util_fmt(path, sizeof(path), "%s/instance/event.json", node_dir);
	util_strlcpy(text, "{\"event\": \"2026onwat\", \"name\": \"Waterloo "
	    "District\"}\n", sizeof(text));
	if (access(path, F_OK) == -1 &&
	    util_write_file_atomic(path, text, strlen(text), 0644) == -1)
		goto syserr;
	return 0;
dberr:
	util_fmt(err, errsz, "sample database %s: %s", path,
	    msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_close(db);
	return -1;
syserr:
	util_fmt(err, errsz, "%s: %s", path, strerror(errno));
	return -1;
}

/* Pair every node with every other through the real flow (ping, pin,
 * hello), exactly as `meshsync peer add` does; pairs already made on an
 * earlier run are left alone. */
static int
demo_pair(const struct conf *conf)
{
	for (int i = 0; i < DEMO_NODES; i++) {
		char path[UTIL_PATH_MAX], err[512];
		struct store_identity id;
		sqlite3 *db = NULL;

		conf_path(&conf[i], path, sizeof(path), CONF_STATE_DB);
		if (store_open(path, 0, &db, err, sizeof(err)) == -1 ||
		    store_identity_load(db, &id) == -1) {
			fprintf(stderr, "meshsync demo: %s: %s\n", path, err);
			sqlite3_close(db);
			return -1;
		}
		for (int j = 0; j < DEMO_NODES; j++) {
			struct peer p;
			if (j == i || peers_find(db, demo_names[j], &p) == 0)
				continue;
			if (peer_add_url(db, &id, conf[j].public_url,
			    demo_names[j], NULL, &p, err, sizeof(err)) == -1) {
				fprintf(stderr, "meshsync demo: pairing %s with "
				    "%s: %s\n", demo_names[i], demo_names[j], err);
				sqlite3_close(db);
				return -1;
			}
		}
		sqlite3_close(db);
	}
	return 0;
}

/* `meshsync track --immediate app.db teams reports` on one node (it is
 * idempotent, so every start of the demo may run it). */
static int
demo_track(const char *exe, const char *dir)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null != -1)
			dup2(null, STDOUT_FILENO);
		execl(exe, exe, "track", "--immediate", "--dir", dir, "app.db",
		    "teams", "reports", (char *)NULL);
		_exit(127);
	}
	if (pid == -1 || waitpid(pid, &st, 0) == -1)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static volatile sig_atomic_t demo_stop;

static void
on_stop(int sig)
{
	(void)sig;
	demo_stop = 1;
}

int
cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = "./var/demo", *es, *host = "127.0.0.1";
	char node_dir[DEMO_NODES][UTIL_PATH_MAX], listen[64], err[512];
	char pw[DEMO_NODES][64], path[UTIL_PATH_MAX], exe[UTIL_PATH_MAX];
	char cfpath[UTIL_PATH_MAX];
	struct conf conf[DEMO_NODES];
	pid_t kids[DEMO_NODES] = { -1, -1, -1 };
	long long base = 8701;
	struct sigaction sa;
	int ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'p') {
			if (util_strtonum(optarg, 1, 65535 - DEMO_NODES, &base,
			    &es) == -1) {
				fprintf(stderr, "meshsync demo: port %s\n", es);
				return 2;
			}
		} else if (ch == 'h') {
			struct in_addr ia;
			if (inet_pton(AF_INET, optarg, &ia) != 1) {
				fprintf(stderr, "meshsync demo: --host wants an "
				    "IPv4 address\n");
				return 2;
			}
			host = optarg;
		} else
			return cmd_usage(cmd_find("demo"), 1);
	}
	if (util_self_exe(exe, sizeof(exe)) == -1) {
		fprintf(stderr, "meshsync demo: cannot find own executable\n");
		return 1;
	}
	for (int i = 0; i < DEMO_NODES; i++) {
		struct stat st;
		char *saved = NULL;

		util_fmt(node_dir[i], sizeof(node_dir[i]), "%s/%s", dir,
		    demo_names[i]);
		util_fmt(listen, sizeof(listen), "%s:%lld", host, base + i);
		util_fmt(path, sizeof(path), "%s/demo-password", node_dir[i]);
		util_fmt(cfpath, sizeof(cfpath), "%s/" CONF_FILE, node_dir[i]);
		if (stat(cfpath, &st) == -1) {
			if (cmd_init_node(node_dir[i], demo_names[i], listen,
			    NULL, pw[i], sizeof(pw[i]), err, sizeof(err)) == -1) {
				fprintf(stderr, "meshsync demo: %s\n", err);
				return 1;
			}
			/* Kept (0600, inside the node dir) so a second run
			 * of the demo can print the login again. */
			if (util_write_file_atomic(path, pw[i], strlen(pw[i]),
			    0600) == -1) {
				fprintf(stderr, "meshsync demo: %s: %s\n", path,
				    strerror(errno));
				return 1;
			}
		} else if (util_read_file(path, 63, &saved, NULL) == 0) {
			util_strlcpy(pw[i], saved, sizeof(pw[i]));
			free(saved);
		} else
			util_strlcpy(pw[i], "(set when this demo was first "
			    "created)", sizeof(pw[i]));
		if (cmd_load(&conf[i], node_dir[i], "demo") == -1)
			return 1;
		if (demo_sample(conf[i].dir, demo_names[i], err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "meshsync demo: %s\n", err);
			return 1;
		}
		/* Track the sample tables exactly as a user would, so the
		 * demo syncs rows from the first minute. */
		if (demo_track(exe, conf[i].dir) == -1) {
			fprintf(stderr, "meshsync demo: cannot track the sample "
			    "tables of %s\n", demo_names[i]);
			return 1;
		}
		if (cmd_load(&conf[i], node_dir[i], "demo") == -1)
			return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (int i = 0; i < DEMO_NODES; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			setpgid(0, 0);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			execl(exe, exe, "up", "--quiet", "--dir", conf[i].dir,
			    (char *)NULL);
			_exit(127);
		}
	}
	for (int i = 0; i < DEMO_NODES; i++) {
		int waited = 0;
		while (!node_port_ready(&conf[i])) {
			struct timespec ts = { 0, 100 * 1000000L };
			if (demo_stop || waited >= DEMO_READY_MS ||
			    waitpid(kids[i], NULL, WNOHANG) == kids[i]) {
				fprintf(stderr, "meshsync demo: node %s did not "
				    "start (see %s/meshsync.log)\n",
				    demo_names[i], conf[i].dir);
				goto stop;
			}
			nanosleep(&ts, NULL);
			waited += 100;
		}
	}
	if (demo_pair(conf) == -1)
		goto stop;
	printf("\nmeshsync demo: %d nodes running, each paired with the "
	    "others\n\n", DEMO_NODES);
	for (int i = 0; i < DEMO_NODES; i++)
		printf("  %-8s http://%s/sync/dashboard   login: admin / %s\n",
		    demo_names[i], conf[i].listen, pw[i]);
	printf("\nSample app database: %s/<node>/instance/app.db\n"
	    "Ctrl-C stops all three.\n", dir);
	fflush(stdout);
	rc = 0;
	while (!demo_stop) {
		pid_t pid = wait(NULL);
		if (pid == -1 && errno == ECHILD)
			break;
		for (int i = 0; i < DEMO_NODES; i++)
			if (pid == kids[i]) {
				fprintf(stderr, "meshsync demo: node %s stopped "
				    "unexpectedly\n", demo_names[i]);
				kids[i] = -1;
				rc = 1;
				demo_stop = 1;
			}
	}
stop:
	for (int i = 0; i < DEMO_NODES; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
	for (int i = 0; i < DEMO_NODES; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	printf("meshsync demo: stopped\n");
	return rc;
}
