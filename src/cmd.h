/* cmd.h - subcommands of the meshsync executable, one file each, dispatched by main.c. */
#ifndef MESHSYNC_CMD_H
#define MESHSYNC_CMD_H

#include <sqlite3.h>

#include "conf.h"
#include "store.h"

#define CMD_DEFAULT_DIR	"./var/node"

struct cmd {
	const char	*name;
	const char	*summary;	/* one line for `meshsync --help` */
	const char	*usage;		/* full text for `meshsync CMD --help` */
	int		(*fn)(int argc, char **argv);
};

/* The table, in main.c order; NULL-terminated. */
extern const struct cmd cmd_table[];

/* Print cmd's usage to stdout (for --help, status 0) or stderr (misuse,
 * status 2) and return that status. */
int	 cmd_usage(const struct cmd *cmd, int to_stderr);
const struct cmd *cmd_find(const char *name);

/*
 * Make DIR absolute, load its meshsync.conf and open the log (tag = the
 * command).  Prints one clear line and returns -1 when DIR is not a node.
 */
int	 cmd_load(struct conf *c, const char *dir, const char *tag);

/* cmd_load + open the state DB and load the identity. */
int	 cmd_open_state(struct conf *c, const char *dir, const char *tag,
	    sqlite3 **db, struct store_identity *id);

/* First line of FILE ("-": standard input) into buf, for password files.
 * Returns 0, or -1 when unreadable or too long. */
int	 cmd_read_secret(const char *file, char *buf, size_t bufsz);

int	 cmd_init(int, char **);
int	 cmd_up(int, char **);
int	 cmd_fcgi(int, char **);
int	 cmd_worker(int, char **);
int	 cmd_status(int, char **);
int	 cmd_demo(int, char **);
int	 cmd_user(int, char **);
int	 cmd_peer(int, char **);
int	 cmd_track(int, char **);
int	 cmd_untrack(int, char **);
int	 cmd_sync(int, char **);
int	 cmd_compact(int, char **);
int	 cmd_lock(int, char **);
int	 cmd_update(int, char **);

/* Create and fully initialise a node (shared by init and demo).  password
 * NULL means generate one; it is copied to pw_out (may be NULL). */
int	 cmd_init_node(const char *dir, const char *name, const char *listen,
	    const char *password, char *pw_out, size_t pw_outsz, char *err,
	    size_t errsz);

#endif
