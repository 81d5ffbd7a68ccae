/* cmd_run.c - the long-running subcommands: up, fcgi and worker. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "node.h"
#include "pool.h"
#include "worker.h"

/* Parse "--dir DIR [--quiet]"; returns 0 or the usage status. */
static int
parse(int argc, char **argv, const char *name, const char **dir, int *quiet)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*dir = CMD_DEFAULT_DIR;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			*dir = optarg;
		else if (ch == 'q' && quiet != NULL)
			*quiet = 1;
		else
			return cmd_usage(cmd_find(name), 1);
	}
	if (optind != argc)
		return cmd_usage(cmd_find(name), 1);
	return 0;
}

int
cmd_up(int argc, char **argv)
{
	struct node_up_opts o = { 0 };
	const char *dir;
	struct conf c;
	int rc;

	if ((rc = parse(argc, argv, "up", &dir, &o.quiet)) != 0)
		return rc;
	if (cmd_load(&c, dir, "up") == -1)
		return 1;
	return node_up(&c, &o);
}

int
cmd_fcgi(int argc, char **argv)
{
	const char *dir;
	struct conf c;
	int rc;

	if ((rc = parse(argc, argv, "fcgi", &dir, NULL)) != 0)
		return rc;
	if (cmd_load(&c, dir, "fcgi") == -1)
		return 1;
	return pool_run(&c);
}

int
cmd_worker(int argc, char **argv)
{
	const char *dir;
	struct conf c;
	int rc;

	if ((rc = parse(argc, argv, "worker", &dir, NULL)) != 0)
		return rc;
	if (cmd_load(&c, dir, "worker") == -1)
		return 1;
	return worker_run(&c);
}
