/* cmd_init.c - `meshsync init`: a new node directory with identity and superadmin. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "users.h"
#include "util.h"

int
cmd_init_node(const char *dir, const char *name, const char *listen,
    const char *password, char *pw_out, size_t pw_outsz, char *err,
    size_t errsz)
{
	static const char *const set_keys[] = { "name", "listen", NULL };
	char abs[UTIL_PATH_MAX], path[UTIL_PATH_MAX], dbpath[UTIL_PATH_MAX];
	char pw[64], why[256];
	struct store_identity id;
	struct conf c;
	sqlite3 *db = NULL;
	char *text = NULL;
	struct stat st;

	if (util_mkdirs(dir, 0755) == -1 || realpath(dir, abs) == NULL) {
		util_fmt(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	conf_defaults(&c, abs);
	conf_path(&c, path, sizeof(path), CONF_FILE);
	conf_path(&c, dbpath, sizeof(dbpath), CONF_STATE_DB);
	if (stat(path, &st) == 0 || stat(dbpath, &st) == 0) {
		util_fmt(err, errsz, "%s is already a meshsync node; nothing "
		    "changed", dir);
		return -1;
	}
	if ((name != NULL && conf_set(&c, "name", name, why, sizeof(why)) == -1)
	    || (listen != NULL && conf_set(&c, "listen", listen, why,
	    sizeof(why)) == -1)) {
		util_fmt(err, errsz, "%s", why);
		return -1;
	}
	if (password != NULL)
		util_strlcpy(pw, password, sizeof(pw));
	else
		users_random_password(pw, sizeof(pw));

	/* The state DB first and the config last: a node counts as
	 * initialised once meshsync.conf exists, so a failure in between
	 * leaves a directory `init` can simply run on again. */
	conf_path(&c, path, sizeof(path), "instance");
	if (util_mkdirs(path, 0755) == -1)
		goto syserr;
	conf_path(&c, path, sizeof(path), CONF_RUN_DIR);
	if (util_mkdirs(path, 0700) == -1)
		goto syserr;
	conf_path(&c, path, sizeof(path), "backups");
	if (util_mkdirs(path, 0700) == -1)
		goto syserr;
	conf_path(&c, path, sizeof(path), CONF_LOG);
	log_open(path, "init", LOG_LVL_INFO);
	if (store_open(dbpath, 1, &db, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "%s", why);
		goto fail;
	}
	if (store_identity_create(db, &id) == -1) {
		util_fmt(err, errsz, "cannot create node identity: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	if (users_add(db, "admin", "superadmin", pw, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "superadmin: %s", why);
		goto fail;
	}
	store_event(db, "info", "node", NULL, "node '%s' initialised", c.name);
	sqlite3_close(db);
	db = NULL;
	if ((text = conf_render(&c, set_keys)) == NULL) {
		util_fmt(err, errsz, "out of memory");
		goto fail;
	}
	conf_path(&c, path, sizeof(path), CONF_FILE);
	if (util_write_file_atomic(path, text, strlen(text), 0644) == -1)
		goto syserr;
	free(text);
	if (pw_out != NULL)
		util_strlcpy(pw_out, pw, pw_outsz);
	sodium_memzero(pw, sizeof(pw));
	return 0;
syserr:
	util_fmt(err, errsz, "%s: %s", path, strerror(errno));
fail:
	free(text);
	sqlite3_close(db);
	unlink(dbpath);
	sodium_memzero(pw, sizeof(pw));
	return -1;
}

int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "admin-password-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *name = NULL, *listen = NULL;
	const char *pwfile = NULL;
	char pw[USERS_PW_MAX + 1], out[64], err[UTIL_PATH_MAX + 128];
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'n': name = optarg; break;
		case 'l': listen = optarg; break;
		case 'p': pwfile = optarg; break;
		default: return cmd_usage(cmd_find("init"), 1);
		}
	}
	if (optind != argc)
		return cmd_usage(cmd_find("init"), 1);
	if (pwfile != NULL && cmd_read_secret(pwfile, pw, sizeof(pw)) == -1) {
		fprintf(stderr, "meshsync init: cannot read a password from "
		    "%s\n", pwfile);
		return 1;
	}
	if (cmd_init_node(dir, name, listen, pwfile ? pw : NULL, out,
	    sizeof(out), err, sizeof(err)) == -1) {
		fprintf(stderr, "meshsync init: %s\n", err);
		return 1;
	}
	printf("meshsync: node created in %s\n", dir);
	if (pwfile == NULL)
		printf("superadmin login: admin / %s\n"
		    "(shown only now; change it with `meshsync user passwd "
		    "--dir %s admin`)\n", out, dir);
	else
		printf("superadmin login: admin (password from %s)\n", pwfile);
	printf("start it with: meshsync up --dir %s\n", dir);
	return 0;
}
