/* wake.c - datagrams on DIR/run/worker.sock: one message, one wake-up, no connection state. */
#include "wake.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "node.h"
#include "util.h"

static int
addr_of(const struct conf *c, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	return node_run_path(c, sun->sun_path, sizeof(sun->sun_path),
	    "worker.sock");
}

int
wake_listen(const struct conf *c)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	if (addr_of(c, &sun) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* The worker lock is held, so a leftover file is stale. */
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	old = umask(0077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;
		umask(old);
		close(fd);
		errno = e;
		return -1;
	}
	umask(old);
	return fd;
}

void
wake_close(const struct conf *c, int fd)
{
	struct sockaddr_un sun;

	if (fd != -1)
		close(fd);
	if (addr_of(c, &sun) == 0)
		unlink(sun.sun_path);
}

int
wake_send(const struct conf *c, const char *msg)
{
	struct sockaddr_un sun;
	ssize_t n;
	int fd;

	if (addr_of(c, &sun) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	n = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun,
	    sizeof(sun));
	close(fd);
	return n == (ssize_t)strlen(msg) ? 0 : -1;
}

int
wake_applied_from(const struct conf *c, const char *node_id)
{
	char msg[WAKE_MSG_MAX];

	util_fmt(msg, sizeof(msg), "applied %s", node_id);
	return wake_send(c, msg);
}

int
wake_recv(int fd, char *buf, size_t bufsz)
{
	ssize_t n = recv(fd, buf, bufsz - 1, 0);

	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	buf[n] = '\0';
	return (int)n;
}
