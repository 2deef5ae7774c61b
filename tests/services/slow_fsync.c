/* A slow disk for tests: loaded with LD_PRELOAD, fsync and fdatasync sleep
 * SLOW_FSYNC_MS milliseconds before doing their work, as an SD card that stalls does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void stall(void) {
    const char *ms = getenv("SLOW_FSYNC_MS");
    long v = ms ? atol(ms) : 0;
    if (v > 0) {
        struct timespec t = {v / 1000, (v % 1000) * 1000000L};
        nanosleep(&t, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    stall();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    stall();
    return real(fd);
}
