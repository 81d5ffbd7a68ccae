/* cmd_user.c - `meshsync user add|passwd|del|list`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cmd.h"
#include "users.h"

int
cmd_user(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "password-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *pwfile = "-", *verb;
	char pw[USERS_PW_MAX + 2], err[256];
	struct conf c;
	sqlite3 *db = NULL;
	int ch, rc = 1, nargs;

	/* GNU getopt permutes, so options may follow the verb and names. */
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'p')
			pwfile = optarg;
		else
			return cmd_usage(cmd_find("user"), 1);
	}
	nargs = argc - optind;
	if (nargs < 1)
		return cmd_usage(cmd_find("user"), 1);
	verb = argv[optind];
	if (!((strcmp(verb, "add") == 0 && nargs == 3) ||
	    (strcmp(verb, "passwd") == 0 && nargs == 2) ||
	    (strcmp(verb, "del") == 0 && nargs == 2) ||
	    (strcmp(verb, "list") == 0 && nargs == 1)))
		return cmd_usage(cmd_find("user"), 1);
	if (cmd_open_state(&c, dir, "user", &db, NULL) == -1)
		return 1;
	if (strcmp(verb, "add") == 0 || strcmp(verb, "passwd") == 0) {
		if (strcmp(pwfile, "-") == 0 && isatty(STDIN_FILENO))
			fprintf(stderr, "password for %s: ", argv[optind + 1]);
		if (cmd_read_secret(pwfile, pw, sizeof(pw)) == -1) {
			fprintf(stderr, "meshsync user: cannot read the password\n");
			goto done;
		}
	}
	if (strcmp(verb, "add") == 0) {
		if (users_add(db, argv[optind + 1], argv[optind + 2], pw, err,
		    sizeof(err)) == -1)
			goto fail;
		printf("user %s added (%s)\n", argv[optind + 1], argv[optind + 2]);
	} else if (strcmp(verb, "passwd") == 0) {
		if (users_passwd(db, argv[optind + 1], pw, err, sizeof(err)) == -1)
			goto fail;
		printf("password of %s changed; their sessions have ended\n",
		    argv[optind + 1]);
	} else if (strcmp(verb, "del") == 0) {
		if (users_del(db, argv[optind + 1], err, sizeof(err)) == -1)
			goto fail;
		printf("user %s deleted\n", argv[optind + 1]);
	} else {
		json_object *list = users_list(db);
		size_t n = list ? json_object_array_length(list) : 0;
		for (size_t i = 0; i < n; i++) {
			json_object *u = json_object_array_get_idx(list, i), *v;
			json_object_object_get_ex(u, "name", &v);
			printf("%-24s ", json_object_get_string(v));
			json_object_object_get_ex(u, "role", &v);
			printf("%-11s ", json_object_get_string(v));
			json_object_object_get_ex(u, "created", &v);
			printf("%s\n", json_object_get_string(v));
		}
		json_object_put(list);
	}
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "meshsync user: %s\n", err);
done:
	sodium_memzero(pw, sizeof(pw));
	sqlite3_close(db);
	return rc;
}
