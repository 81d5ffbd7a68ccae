/* update.h - remote update engine: release manifests, staging, crash-safe swap, rollback, post-update script, health wait. */
#ifndef MESHSYNC_UPDATE_H
#define MESHSYNC_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "conf.h"
#include "files.h"

/*
 * A pure library: no HTTP, no curl, no FastCGI.  Bytes arrive through a
 * struct files_fetcher (files.h) and the health check is a callback, so the
 * same code runs under `meshsync update apply` (fetching from the origin
 * over signed requests) and in tests.
 *
 * Names next to the application tree APP (all siblings, same filesystem,
 * so every step below is a rename(2)):
 *   APP.meshsync-stage-ID     the new tree being built
 *   APP.meshsync-restore-ID   a backup on its way back into place
 *   APP.meshsync-journal      the swap journal (present only mid-swap)
 *   APP.meshsync-lock         flock: one update/rollback/recovery at a time
 * Backups live in NODE/backups: app-TIMESTAMP-ID (trees that were replaced
 * by an update) and rolled-back-TIMESTAMP-ID (trees that a rollback took
 * out of service).  Backups never contain the preserved paths: those move
 * with every swap into the tree that goes live.
 *
 * Crash safety
 * ------------
 * A swap is: (0, restore only) rename the backup to the stage name;
 * (1) rename every preserved path of APP into the stage; (2) rename APP
 * into backups/; (3) rename the stage to APP.  Before step 0/1 the journal
 * lists every path involved (absolute) and the preserved paths (relative),
 * written with util_write_file_atomic; it is removed after step 3.  Every
 * step is a rename, so the state on disk after a crash is one of a few,
 * told apart by which of stage, APP and the final backup path exist:
 *   stage absent, final backup present   step 3 done: complete
 *   stage present, APP present           inside step 1
 *   stage present, APP absent            between 2 and 3
 * Recovery (update_recover, run by the worker at start-up, by every update
 * before it starts and by `meshsync update rollback`) drives the journal to
 * an end: an update is undone (preserved paths moved back, stage deleted:
 * the old tree, which was never left incomplete, is live again); a restore
 * is finished (it was asked for because the live tree was bad).  Each move
 * checks what already happened, so recovery is idempotent and may itself
 * crash and be run again.  A stage that never got a journal holds nothing
 * but fetched files and is simply deleted.
 *
 * When the node directory lies inside APP it is one of the preserved paths:
 * between steps 1 and 3 it is not at its usual path.  The journal is beside
 * APP, not in the node directory, for that reason, and
 * update_recover_orphan() finds it from the node directory's path alone.
 */

#define UPDATE_PROTOCOL_MIN	2	/* first protocol that has "update" */
#define UPDATE_ID_HEX		33	/* 16 random bytes as hex + NUL */
#define UPDATE_MAX_FILES	200000	/* entries in one release */
#define UPDATE_DISK_MARGIN	(32LL << 20)	/* free space kept beyond need */
#define UPDATE_HEALTH_POLL_MS	500
#define UPDATE_HEALTH_GRACE_MS	1000	/* let the script stop the old app */

struct update_cfg {
	char	 app_dir[UTIL_PATH_MAX];	/* "" when updates are off */
	char	 node_dir[UTIL_PATH_MAX];
	char	 instance_dir[UTIL_PATH_MAX];
	char	 backups_dir[UTIL_PATH_MAX];
	char	 log_path[UTIL_PATH_MAX];	/* NODE/update.log */
	char	 preserve[CONF_VAL_MAX];	/* globs */
	char	 scripts[CONF_VAL_MAX];		/* post_update_scripts */
	char	 health_url[256];
	int	 health_timeout;		/* seconds */
	int	 keep_backups;
};

/* Fill u from the node configuration. */
void	 update_cfg_init(struct update_cfg *u, const struct conf *c);

/*
 * True when rel (relative to app_dir) is kept across updates: the instance
 * folder and the node directory when they lie inside app_dir, and every
 * `preserve` glob (matched against the whole relative path and, for globs
 * without '/', the basename; a match on a directory covers its subtree).
 */
int	 update_is_preserved(const struct update_cfg *u, const char *rel);

/*
 * The release manifest of app_dir: walks it without following symlinks,
 * skips preserved paths, sockets, fifos, devices and names that fail
 * fpath_check (logged), and hashes every file (BLAKE2b-256, streamed):
 *   {"format": 1, "count": n, "bytes": n,
 *    "files": [{"path", "kind": "file"|"dir"|"link", "mode", "size",
 *               "hash" (files: content; links: target), "target"?}]}
 * sorted by path (parents first).  *out is owned by the caller.  Returns 0,
 * or -1 with a reason.
 */
int	 update_manifest_build(const struct update_cfg *u, json_object **out,
	    char *err, size_t errsz);

/*
 * Check every entry of a manifest received from a peer: object shape and
 * types, safe paths (fpath_check), strictly increasing paths (no
 * duplicates), hashes of 64 hex digits, sizes >= 0.  Returns 0, or -1
 * naming the first bad entry.  Pure function.
 */
int	 update_manifest_check(json_object *m, char *err, size_t errsz);

struct update_stats {
	int64_t	 files;		/* regular files in the release */
	int64_t	 reused;	/* copied from the current tree */
	int64_t	 fetched;	/* came through the fetcher */
	int64_t	 bytes_fetched;
	int64_t	 skipped;	/* entries preserved on this node */
};

/*
 * Build APP.meshsync-stage-ID from a checked manifest: free disk space is
 * checked first (every file's size plus UPDATE_DISK_MARGIN on APP's
 * filesystem); files whose path holds the same content in the current
 * tree are copied from it, the rest fetched; every file's size and hash is
 * verified; dirs and links are made; modes applied; the stage is synced to
 * disk.  Entries preserved on this node are skipped (the live copy stays).
 * Nothing outside the stage is touched; on failure the stage is removed.
 * stage gets the path.  Returns 0, or -1 with a reason.
 */
int	 update_stage(const struct update_cfg *u, json_object *manifest,
	    const char *id, const struct files_fetcher *f, char *stage,
	    size_t stagesz, struct update_stats *st, char *err, size_t errsz);

/*
 * Swap a verified stage in (journaled, see above).  The replaced tree
 * becomes backups/app-TIMESTAMP-ID; its name goes to backup.  Returns 0,
 * or -1 with a reason (the stage is then removed and APP is as before,
 * unless the failure came mid-swap, where update_recover has been run).
 */
int	 update_swap(const struct update_cfg *u, const char *stage,
	    const char *id, char *backup, size_t backupsz, char *err,
	    size_t errsz);

/*
 * Put backup `name` (NULL: the newest app-* backup) back in place of the
 * live tree, which becomes backups/rolled-back-TIMESTAMP-ID; preserved
 * paths move along as in a swap.  restored gets the name put back.
 * Returns 0, -1 with a reason, or 1 when there is no backup.
 */
int	 update_restore(const struct update_cfg *u, const char *name,
	    const char *id, char *restored, size_t restoredsz, char *err,
	    size_t errsz);

enum update_recovery {
	UPDATE_REC_NONE = 0,	/* no journal: nothing was half-done */
	UPDATE_REC_UNDONE,	/* an interrupted update was undone */
	UPDATE_REC_COMPLETED,	/* an interrupted update's swap had finished */
	UPDATE_REC_RESTORED,	/* an interrupted restore was finished */
};

/*
 * Finish or undo a half-done swap recorded in APP's journal (see above),
 * and delete stages that never got a journal.  Call with the update lock
 * held.  *what says what happened; detail (may be NULL) a sentence for
 * logs.  Returns 0, or -1 with a reason (the journal then stays).
 */
int	 update_recover(const struct update_cfg *u, enum update_recovery *what,
	    char *detail, size_t detailsz, char *err, size_t errsz);

/*
 * Recovery when the node directory itself is missing because a crash
 * caught it inside a stage: look for ANCESTOR.meshsync-journal for each
 * ancestor of node_dir (absolute, need not exist) and run it.  Returns 1
 * when a journal was found and run, 0 when none, -1 on failure.
 */
int	 update_recover_orphan(const char *node_dir, char *detail,
	    size_t detailsz);

/*
 * Take APP's update lock without waiting.  Returns the fd (close to
 * release), -1 with errno EWOULDBLOCK when someone holds it, -1 otherwise.
 */
int	 update_lock(const struct update_cfg *u);

/*
 * Fork a process that outlives this one and inherits nothing it should
 * not: own session, re-parented to init (double fork), cwd (NULL: kept;
 * failure _exits 127), stdin /dev/null, stdout and stderr appended to
 * log_path with banner (may be NULL) written first, no descriptor above 2
 * except keep_fd (-1: none), SIGPIPE and SIGCHLD at their defaults.
 * Returns 0 in that process, which must exec or _exit; 1 in the caller
 * once the intermediate child is reaped; -1 with errno when fork fails.
 */
int	 update_fork_detached(const char *cwd, const char *log_path,
	    const char *banner, int keep_fd);

/*
 * Start the first existing post-update script (post_update_scripts; NAME.sh
 * through /bin/sh on Unix; NAME.bat only where Windows runs it, so never
 * here) detached: own session, cwd APP, stdin /dev/null, output appended
 * to NODE/update.log, no inherited descriptors.  which gets "NAME.sh", or
 * "" when none exists.  Returns 0, or -1 with a reason.
 */
int	 update_run_script(const struct update_cfg *u, const char *id,
	    char *which, size_t whichsz, char *err, size_t errsz);

/* The health check: 1 healthy, 0 not (detail says why). */
struct update_health {
	int	(*check)(void *arg, const char *url, char *detail,
		    size_t detailsz);
	void	*arg;
};

/*
 * Poll health_url until it is healthy or health_timeout passes (first
 * poll after UPDATE_HEALTH_GRACE_MS).  Returns 1 healthy, 0 failed (detail
 * says how), 2 when no health_url is set.
 */
int	 update_wait_healthy(const struct update_cfg *u,
	    const struct update_health *h, char *detail, size_t detailsz);

/* Delete the oldest backups beyond keep_backups (each kind on its own). */
void	 update_prune_backups(const struct update_cfg *u);

/*
 * Backups as a JSON array of {"name", "kind": "app"|"rolled-back"},
 * newest first (caller puts).
 */
json_object *update_backups(const struct update_cfg *u);

/* True when APP's journal exists (a swap is under way or was cut short). */
int	 update_journal_exists(const struct update_cfg *u);

/*
 * Tests only: when the environment variable MESHSYNC_TEST_CRASH_AT equals
 * point, the process kills itself with SIGKILL right there, which is the
 * only way to stop an update deterministically between two renames.
 * Points: "staged", "preserve", "backup", "swapped".
 */
void	 update_crash_point(const char *point);

#endif
