/*
 * Skiff's pause process: the first process of every container pod sandbox. It holds the
 * pod's namespaces (network, IPC, UTS) open while the pod's containers come and go, reaps
 * zombies when it is the PID namespace's init, and exits on SIGINT/SIGTERM.
 *
 * Built statically by node-runtime/build.rs and wrapped by the agent into the OCI image it
 * serves from the cluster image store as the CRI sandbox image.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
    (void)signo;
    _exit(0);
}

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("skiff-pause\n");
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "skiff-pause: warning: not PID 1\n");
    }
    struct sigaction stop_action = {.sa_handler = stop};
    struct sigaction reap_action = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &stop_action, NULL) < 0 || sigaction(SIGTERM, &stop_action, NULL) < 0 ||
        sigaction(SIGCHLD, &reap_action, NULL) < 0) {
        perror("skiff-pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
