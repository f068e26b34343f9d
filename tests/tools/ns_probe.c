/*
 * ns_probe: look around from inside a process's sandbox, with its uid.
 *   ns_probe PID UID GID OP ARG [OP ARG ...]
 * joins PID's mount, network, IPC and UTS namespaces (like nsenter -t
 * PID -m -n -i -u), drops to UID/GID with no groups and no capabilities
 * (like -S UID -G GID), then runs each OP and prints one line for it:
 *   stat PATH   "stat PATH: ok" or "stat PATH: <error>"
 *   list DIR    "list DIR: name name ..." or "list DIR: <error>"
 *   kill PID    "kill PID: ok" or "kill PID: <error>" (signal 0)
 *   ifaces -    "ifaces: lo ..." (network interfaces it sees)
 *   hostname -  "hostname: NAME"
 * Nothing is executed inside: the sandbox holds no shell or ls, so the
 * checks run in this process after it joined.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int
join(int pid)
{
	static const struct {
		const char *name;
		int         type;
	} ns[] = {{"net", CLONE_NEWNET},
	          {"ipc", CLONE_NEWIPC},
	          {"uts", CLONE_NEWUTS},
	          {"mnt", CLONE_NEWNS}};
	char path[64];

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns[i].name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
		    setns(fd, ns[i].type) < 0) {
			fprintf(stderr, "ns_probe: join %s: %s\n", path,
			        strerror(errno));
			return -1;
		}
		close(fd);
	}
	return chdir("/");
}

int
main(int argc, char **argv)
{
	char *end;
	long  pid, uid, gid;

	if (argc < 4 || (argc - 4) % 2 != 0) {
		fprintf(stderr, "usage: ns_probe PID UID GID OP ARG ...\n");
		return 2;
	}
	pid = strtol(argv[1], &end, 10);
	uid = strtol(argv[2], &end, 10);
	gid = strtol(argv[3], &end, 10);
	if (join((int) pid) < 0) {
		return 1;
	}
	/* the interface names need no files: read them while still root is
	 * not needed either, if_nameindex works unprivileged */
	if (setgroups(0, NULL) < 0 ||
	    setresgid((gid_t) gid, (gid_t) gid, (gid_t) gid) < 0 ||
	    setresuid((uid_t) uid, (uid_t) uid, (uid_t) uid) < 0) {
		fprintf(stderr, "ns_probe: drop to %ld/%ld: %s\n", uid, gid,
		        strerror(errno));
		return 1;
	}
	for (int i = 4; i < argc; i += 2) {
		const char *op = argv[i], *arg = argv[i + 1];

		if (strcmp(op, "stat") == 0) {
			struct stat sb;
			printf("stat %s: %s\n", arg,
			       stat(arg, &sb) == 0 ? "ok" : strerror(errno));
		} else if (strcmp(op, "list") == 0) {
			DIR           *d = opendir(arg);
			struct dirent *e;

			printf("list %s:", arg);
			if (d == NULL) {
				printf(" %s\n", strerror(errno));
				continue;
			}
			while ((e = readdir(d)) != NULL) {
				if (strcmp(e->d_name, ".") != 0 &&
				    strcmp(e->d_name, "..") != 0) {
					printf(" %s", e->d_name);
				}
			}
			closedir(d);
			printf("\n");
		} else if (strcmp(op, "kill") == 0) {
			printf("kill %s: %s\n", arg,
			       kill((pid_t) atoi(arg), 0) == 0
			           ? "ok"
			           : strerror(errno));
		} else if (strcmp(op, "ifaces") == 0) {
			struct if_nameindex *ifs = if_nameindex(), *p;

			printf("ifaces:");
			for (p = ifs; p != NULL && p->if_index != 0; p++) {
				printf(" %s", p->if_name);
			}
			if_freenameindex(ifs);
			printf("\n");
		} else if (strcmp(op, "hostname") == 0) {
			char h[256] = "";
			(void) gethostname(h, sizeof(h) - 1);
			printf("hostname: %s\n", h);
		} else {
			fprintf(stderr, "ns_probe: unknown op %s\n", op);
			return 2;
		}
	}
	return 0;
}
