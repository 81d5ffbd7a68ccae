/* node.c - process supervision for one node: locks, pid files, nginx rendering and the `up` launcher. */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#ifndef MESHSYNC_DATADIR
#define MESHSYNC_DATADIR "/usr/local/share/meshsync"
#endif
#ifndef MESHSYNC_SRCDIR
#define MESHSYNC_SRCDIR "."
#endif
#ifndef MESHSYNC_BUILDDIR
#define MESHSYNC_BUILDDIR "."
#endif

#define NCHAN_MODULE	"/usr/lib/nginx/modules/ngx_nchan_module.so"
#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS	5000

int
node_run_path(const struct conf *c, char *buf, size_t bufsz, const char *name)
{
	return util_fmt(buf, bufsz, "%s/%s/%s", c->dir, CONF_RUN_DIR, name);
}

static pid_t
read_pid(const char *path)
{
	char *text = NULL;
	const char *es;
	long long v;

	if (util_read_file(path, 64, &text, NULL) == -1)
		return 0;
	text[strcspn(text, "\n")] = '\0';
	if (util_strtonum(text, 1, 1 << 30, &v, &es) == -1)
		v = 0;
	free(text);
	return (pid_t)v;
}

int
node_lock(const struct conf *c, const char *name, char *err, size_t errsz)
{
	char lock[UTIL_PATH_MAX], pidf[UTIL_PATH_MAX], file[64], buf[32];
	int fd;

	util_fmt(file, sizeof(file), "%s.lock", name);
	if (node_run_path(c, lock, sizeof(lock), file) == -1) {
		util_fmt(err, errsz, "node directory path too long");
		return -1;
	}
	util_fmt(file, sizeof(file), "%s.pid", name);
	node_run_path(c, pidf, sizeof(pidf), file);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		util_fmt(err, errsz, "%s: %s", lock, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		pid_t other = read_pid(pidf);
		if (other > 0)
			util_fmt(err, errsz, "%s already running for %s (pid %ld)",
			    name, c->dir, (long)other);
		else
			util_fmt(err, errsz, "%s already running for %s", name,
			    c->dir);
		close(fd);
		return -1;
	}
	util_fmt(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (util_write_file_atomic(pidf, buf, strlen(buf), 0644) == -1) {
		util_fmt(err, errsz, "%s: %s", pidf, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
node_unlock(const struct conf *c, const char *name, int fd)
{
	char path[UTIL_PATH_MAX], file[64];

	util_fmt(file, sizeof(file), "%s.pid", name);
	if (node_run_path(c, path, sizeof(path), file) == 0)
		unlink(path);
	util_fmt(file, sizeof(file), "%s.lock", name);
	if (node_run_path(c, path, sizeof(path), file) == 0)
		unlink(path);
	if (fd != -1)
		close(fd);
}

pid_t
node_pid_alive(const struct conf *c, const char *name)
{
	char path[UTIL_PATH_MAX], file[64];
	pid_t pid;

	util_fmt(file, sizeof(file), "%s.pid", name);
	if (node_run_path(c, path, sizeof(path), file) == -1)
		return 0;
	pid = read_pid(path);
	if (pid <= 0)
		return 0;
	/* EPERM means it exists but belongs to someone else: still alive. */
	if (kill(pid, 0) == -1 && errno != EPERM)
		return 0;
	return pid;
}

int
node_heartbeat(const struct conf *c)
{
	char path[UTIL_PATH_MAX];
	int fd;

	if (node_run_path(c, path, sizeof(path), "worker.heartbeat") == -1)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	/* Only the mtime matters: no data write, no fsync, no churn. */
	futimens(fd, NULL);
	close(fd);
	return 0;
}

int
node_worker_age(const struct conf *c)
{
	char path[UTIL_PATH_MAX];
	struct stat st;
	time_t now = time(NULL);

	if (node_pid_alive(c, "worker") == 0)
		return -1;
	if (node_run_path(c, path, sizeof(path), "worker.heartbeat") == -1 ||
	    stat(path, &st) == -1)
		return -1;
	return now > st.st_mtime ? (int)(now - st.st_mtime) : 0;
}

static int
has_share(const char *dir)
{
	char path[UTIL_PATH_MAX];

	return util_fmt(path, sizeof(path), "%s/nginx/nginx.conf.in", dir) == 0
	    && access(path, R_OK) == 0;
}

const char *
node_share_dir(void)
{
	const char *env = getenv("MESHSYNC_SHARE");

	char exe[UTIL_PATH_MAX], *slash;

	if (env != NULL && *env != '\0')
		return env;
	/* A binary still in its build tree reads the source tree's files;
	 * an installed one its data dir. */
	if (util_self_exe(exe, sizeof(exe)) == 0 &&
	    (slash = strrchr(exe, '/')) != NULL) {
		*slash = '\0';
		if (strcmp(exe, MESHSYNC_BUILDDIR) == 0 &&
		    has_share(MESHSYNC_SRCDIR))
			return MESHSYNC_SRCDIR;
	}
	return MESHSYNC_DATADIR;
}

/* ---- nginx configuration ---------------------------------------------- */

struct subst {
	const char	*key;
	char		 val[UTIL_PATH_MAX];
};

/* Render SHARE/nginx/NAME.in into RUN/NAME, replacing @KEY@ markers. */
static int
render(const struct conf *c, const char *name, const struct subst *subs,
    size_t nsubs, char *err, size_t errsz)
{
	char in[UTIL_PATH_MAX], out[UTIL_PATH_MAX];
	char *text = NULL, *res = NULL;
	size_t len, cap, o = 0;
	int rc = -1;

	util_fmt(in, sizeof(in), "%s/nginx/%s.in", node_share_dir(), name);
	node_run_path(c, out, sizeof(out), name);
	if (util_read_file(in, 1 << 20, &text, &len) == -1) {
		util_fmt(err, errsz, "%s: %s", in, strerror(errno));
		goto fail;
	}
	cap = len * 2 + 4096;
	if ((res = malloc(cap)) == NULL) {
		util_fmt(err, errsz, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < len;) {
		size_t k;
		if (text[i] == '@') {
			for (k = 0; k < nsubs; k++) {
				size_t kl = strlen(subs[k].key);
				if (strncmp(text + i + 1, subs[k].key, kl) == 0 &&
				    text[i + 1 + kl] == '@') {
					size_t vl = strlen(subs[k].val);
					if (o + vl >= cap)
						goto toolong;
					memcpy(res + o, subs[k].val, vl);
					o += vl;
					i += kl + 2;
					break;
				}
			}
			if (k < nsubs)
				continue;
		}
		if (o + 1 >= cap)
			goto toolong;
		res[o++] = text[i++];
	}
	if (util_write_file_atomic(out, res, o, 0644) == -1) {
		util_fmt(err, errsz, "%s: %s", out, strerror(errno));
		goto fail;
	}
	rc = 0;
	goto fail;
toolong:
	util_fmt(err, errsz, "%s: rendered config too long", in);
fail:
	free(text);
	free(res);
	return rc;
}

static int
render_nginx(const struct conf *c, char *err, size_t errsz)
{
	static const char *const files[] = {
		"nginx.conf", "server.conf", "locations.conf", "fastcgi.conf",
	};
	static const char *const tmpdirs[] = {
		"tmp/fastcgi", "tmp/proxy", "tmp/scgi", "tmp/uwsgi", "tmp/body",
		"tmp/snapshots",
	};
	struct subst subs[] = {
		{ .key = "RUN_DIR" }, { .key = "USER_LINE" },
		{ .key = "NCHAN_MODULE" }, { .key = "BODY_TEMP" },
		{ .key = "LISTEN" }, { .key = "WWW_DIR" }, { .key = "MAX_BODY" },
		{ .key = "INSTANCE_DIR" }, { .key = "MAX_UPLOAD" },
		{ .key = "APP_DIR" },
	};
	char path[UTIL_PATH_MAX];
	struct stat sa, sb;

	node_run_path(c, subs[0].val, sizeof(subs[0].val), "");
	subs[0].val[strlen(subs[0].val) - 1] = '\0';	/* no trailing '/' */
	if (geteuid() == 0) {
		/* As root nginx would drop its workers to nobody, who could
		 * not hand upload temp files to the pool: run as ourselves. */
		struct passwd *pw = getpwuid(geteuid());
		struct group *gr = getgrgid(getegid());
		util_fmt(subs[1].val, sizeof(subs[1].val), "user %s %s;",
		    pw ? pw->pw_name : "root", gr ? gr->gr_name : "root");
	} else
		util_strlcpy(subs[1].val, "# not root: workers run as this user",
		    sizeof(subs[1].val));
	util_strlcpy(subs[2].val, NCHAN_MODULE, sizeof(subs[2].val));
	for (size_t i = 0; i < sizeof(tmpdirs) / sizeof(tmpdirs[0]); i++) {
		node_run_path(c, path, sizeof(path), tmpdirs[i]);
		if (util_mkdirs(path, 0700) == -1) {
			util_fmt(err, errsz, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	node_run_path(c, subs[3].val, sizeof(subs[3].val), "tmp/body");
	/* Uploads are renamed into the instance folder: their temp dir must be
	 * on the same filesystem for rename(2) to be atomic. */
	if (stat(subs[3].val, &sa) == 0 && stat(c->instance_dir, &sb) == 0 &&
	    sa.st_dev != sb.st_dev) {
		util_fmt(subs[3].val, sizeof(subs[3].val),
		    "%s/.meshsync-tmp-body", c->instance_dir);
		if (util_mkdirs(subs[3].val, 0700) == -1) {
			util_fmt(err, errsz, "%s: %s", subs[3].val,
			    strerror(errno));
			return -1;
		}
	}
	util_strlcpy(subs[4].val, c->listen, sizeof(subs[4].val));
	util_fmt(subs[5].val, sizeof(subs[5].val), "%s/www", node_share_dir());
	util_fmt(subs[6].val, sizeof(subs[6].val), "%lld", c->max_body);
	util_strlcpy(subs[7].val, c->instance_dir, sizeof(subs[7].val));
	util_fmt(subs[8].val, sizeof(subs[8].val), "%lld", c->max_upload);
	/* Without app_dir the update location points at an empty run dir:
	 * the pool refuses every request for it anyway. */
	if (c->app_dir[0] != '\0')
		util_strlcpy(subs[9].val, c->app_dir, sizeof(subs[9].val));
	else {
		node_run_path(c, subs[9].val, sizeof(subs[9].val), "tmp/noapp");
		util_mkdirs(subs[9].val, 0700);
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (render(c, files[i], subs, sizeof(subs) / sizeof(subs[0]),
		    err, errsz) == -1)
			return -1;
	return 0;
}

/* ---- child processes --------------------------------------------------- */

static int
find_nginx(const struct conf *c, char *buf, size_t bufsz)
{
	const char *env = getenv("MESHSYNC_NGINX");
	const char *path = getenv("PATH");
	char cand[UTIL_PATH_MAX];

	if (env != NULL && *env != '\0')
		return util_strlcpy(buf, env, bufsz) == 0 &&
		    access(buf, X_OK) == 0 ? 0 : -1;
	if (c->nginx[0] != '\0')
		return util_strlcpy(buf, c->nginx, bufsz) == 0 &&
		    access(buf, X_OK) == 0 ? 0 : -1;
	while (path != NULL && *path != '\0') {
		size_t n = strcspn(path, ":");
		if (util_fmt(cand, sizeof(cand), "%.*s/nginx", (int)n, path) == 0
		    && access(cand, X_OK) == 0)
			return util_strlcpy(buf, cand, bufsz);
		path += n + (path[n] == ':');
	}
	if (access("/usr/sbin/nginx", X_OK) == 0)
		return util_strlcpy(buf, "/usr/sbin/nginx", bufsz);
	return -1;
}

/* Bind the listen address once to learn, before starting anything, whether
 * the port is free; nginx's own message would come after the pool started. */
static int
port_free(const struct conf *c, char *err, size_t errsz)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	int fd = -1, one = 1, rc = -1, gai;
	char addr[64];

	util_strlcpy(addr, c->listen_addr, sizeof(addr));
	if (addr[0] == '[') {	/* [::1] */
		memmove(addr, addr + 1, strlen(addr));
		addr[strcspn(addr, "]")] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	util_fmt(port, sizeof(port), "%d", c->listen_port);
	if ((gai = getaddrinfo(strcmp(addr, "*") == 0 ? NULL : addr, port,
	    &hints, &res)) != 0) {
		util_fmt(err, errsz, "listen address %s: %s", c->listen,
		    gai_strerror(gai));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		util_fmt(err, errsz, "socket: %s", strerror(errno));
		goto done;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
		if (errno == EADDRINUSE)
			util_fmt(err, errsz, "port %s is already in use",
			    c->listen);
		else
			util_fmt(err, errsz, "cannot listen on %s: %s",
			    c->listen, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	return rc;
}

int
node_port_ready(const struct conf *c)
{
	struct addrinfo hints, *res = NULL;
	char port[16], addr[64];
	int fd, ok = 0;

	util_strlcpy(addr, c->listen_addr, sizeof(addr));
	if (addr[0] == '[') {
		memmove(addr, addr + 1, strlen(addr));
		addr[strcspn(addr, "]")] = '\0';
	}
	if (strcmp(addr, "*") == 0 || strcmp(addr, "0.0.0.0") == 0)
		util_strlcpy(addr, "127.0.0.1", sizeof(addr));
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	util_fmt(port, sizeof(port), "%d", c->listen_port);
	if (getaddrinfo(addr, port, &hints, &res) != 0)
		return 0;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 && connect(fd, res->ai_addr, res->ai_addrlen) == 0)
		ok = 1;
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	return ok;
}

static int
can_connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd, ok = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) == -1)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		ok = 1;
	if (fd != -1)
		close(fd);
	return ok;
}

static pid_t
spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* Own process group: a Ctrl-C reaches `up`, which stops the children
	 * in order; PDEATHSIG stops them even if `up` is killed outright. */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	execv(argv[0], argv);
	fprintf(stderr, "meshsync: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t
spawn_self(const char *exe, const char *cmd, const char *dir)
{
	char *argv[] = { (char *)exe, (char *)cmd, (char *)"--dir",
	    (char *)dir, NULL };

	return spawn(argv);
}

static volatile sig_atomic_t up_stop;

static void
on_stop(int sig)
{
	(void)sig;
	up_stop = 1;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait for pid to exit within ms; returns 1 when it did. */
static int
reap_within(pid_t pid, int ms)
{
	for (int waited = 0; waited <= ms; waited += 20) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r == -1 && errno == ECHILD))
			return 1;
		sleep_ms(20);
	}
	return 0;
}

static void
stop_child(pid_t *pid, int sig, const char *what)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	if (!reap_within(*pid, STOP_TIMEOUT_MS)) {
		log_warnx("%s did not stop in time: killing it", what);
		kill(*pid, SIGKILL);
		reap_within(*pid, STOP_TIMEOUT_MS);
	}
	*pid = -1;
}

int
node_up(const struct conf *c, const struct node_up_opts *opts)
{
	char err[512], exe[UTIL_PATH_MAX], nginx[UTIL_PATH_MAX];
	char conf_path[UTIL_PATH_MAX], run_dir[UTIL_PATH_MAX];
	char sock[UTIL_PATH_MAX];
	pid_t pool = -1, worker = -1, web = -1;
	int lockfd = -1, status = 1, waited;
	struct sigaction sa;
	time_t worker_started = 0;

	node_run_path(c, run_dir, sizeof(run_dir), "");
	run_dir[strlen(run_dir) - 1] = '\0';
	if (util_mkdirs(run_dir, 0700) == -1) {
		fprintf(stderr, "meshsync: %s: %s\n", run_dir, strerror(errno));
		return 1;
	}
	if ((lockfd = node_lock(c, "up", err, sizeof(err))) == -1) {
		fprintf(stderr, "meshsync: %s\n", err);
		return 1;
	}
	if (find_nginx(c, nginx, sizeof(nginx)) == -1) {
		fprintf(stderr, "meshsync: nginx not found (install it: "
		    "apt-get install nginx-light libnginx-mod-nchan)\n");
		goto done;
	}
	if (access(NCHAN_MODULE, R_OK) == -1) {
		fprintf(stderr, "meshsync: nginx module nchan missing: %s "
		    "(apt-get install libnginx-mod-nchan)\n", NCHAN_MODULE);
		goto done;
	}
	if (util_self_exe(exe, sizeof(exe)) == -1) {
		fprintf(stderr, "meshsync: cannot find own executable\n");
		goto done;
	}
	node_run_path(c, sock, sizeof(sock), "fcgi.sock");
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "meshsync: node directory path too long for a "
		    "unix socket: %s\n", sock);
		goto done;
	}
	if (port_free(c, err, sizeof(err)) == -1 ||
	    render_nginx(c, err, sizeof(err)) == -1) {
		fprintf(stderr, "meshsync: %s\n", err);
		goto done;
	}
	node_run_path(c, conf_path, sizeof(conf_path), "nginx.conf");
	/* We hold the node lock, so a socket file left here is stale: an
	 * nginx that could not unlink it (killed, or stopped while an update
	 * had moved the node dir) would make this start fail to bind. */
	{
		char stale[UTIL_PATH_MAX];
		if (node_run_path(c, stale, sizeof(stale), "events.sock") == 0)
			unlink(stale);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	pool = spawn_self(exe, "fcgi", c->dir);
	for (waited = 0; !can_connect_unix(sock); waited += 50) {
		if (waited >= START_TIMEOUT_MS || up_stop ||
		    waitpid(pool, NULL, WNOHANG) == pool) {
			if (waitpid(pool, NULL, WNOHANG) == pool)
				pool = -1;
			if (!up_stop)
				fprintf(stderr, "meshsync: the FastCGI pool did "
				    "not start (see %s/%s)\n", c->dir, CONF_LOG);
			goto done;
		}
		sleep_ms(50);
	}
	worker = spawn_self(exe, "worker", c->dir);
	worker_started = time(NULL);
	{
		char *argv[] = { nginx, (char *)"-p", run_dir, (char *)"-c",
		    conf_path, (char *)"-g", (char *)"daemon off;", NULL };
		web = spawn(argv);
	}
	for (waited = 0; !node_port_ready(c); waited += 50) {
		if (waited >= START_TIMEOUT_MS || up_stop ||
		    waitpid(web, NULL, WNOHANG) == web) {
			if (waitpid(web, NULL, WNOHANG) == web)
				web = -1;
			if (!up_stop)
				fprintf(stderr, "meshsync: nginx did not start (see "
				    "%s/nginx-error.log)\n", run_dir);
			goto done;
		}
		sleep_ms(50);
	}
	log_info("node %s up at %s", c->name, c->public_url);
	if (!opts->quiet) {
		printf("meshsync: node '%s' is up at http://%s/\n"
		    "          dashboard: http://%s/sync/dashboard\n"
		    "          Ctrl-C stops it.\n", c->name, c->listen,
		    c->listen);
		fflush(stdout);
	}

	status = 0;
	while (!up_stop) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);

		if (pid == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pid == web) {
			log_err("nginx exited (status %d): stopping the node",
			    WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
			web = -1;
			status = 1;
			break;
		}
		if (pid == pool) {
			log_err("FastCGI pool exited: restarting it");
			sleep_ms(500);
			pool = spawn_self(exe, "fcgi", c->dir);
		} else if (pid == worker) {
			log_warnx("sync worker exited (status %d): restarting it",
			    WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
			/* Back off when it dies right after starting. */
			if (time(NULL) - worker_started < 5)
				sleep_ms(2000);
			worker = spawn_self(exe, "worker", c->dir);
			worker_started = time(NULL);
		}
	}
	log_info("stopping node %s", c->name);
done:
	/* nginx first: no new requests reach a pool that is going away. */
	stop_child(&web, SIGTERM, "nginx");
	stop_child(&worker, SIGTERM, "worker");
	stop_child(&pool, SIGTERM, "FastCGI pool");
	unlink(sock);
	node_unlock(c, "up", lockfd);
	if (!opts->quiet && status == 0)
		printf("meshsync: node '%s' stopped\n", c->name);
	return status;
}
