/* The demo's workload: counts, three times a second, into its stdout. Knows nothing of Cryo. */
#include <stdio.h>
#include <time.h>

int main(void)
{
    struct timespec tick = {0, 333 * 1000 * 1000};
    for (unsigned long n = 1;; n++) {
        printf("count %lu\n", n);
        fflush(stdout);
        nanosleep(&tick, NULL);
    }
}
