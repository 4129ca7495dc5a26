package dev.cryo.ns;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** Id maps as /proc/PID/uid_map shows them from the host (recorded), read back into the namespace's own ids. */
class UserNamespaceTest {
    private static final String USER = "         0      59999          1\n";
    private static final String RANGES = "         0     100000      65536\n     65536       1000          1\n";
    private static final String EVERY_ID = "         0          0 4294967295\n";

    @Test
    void hostIdsBecomeTheNamespacesOwn() {
        assertThat(UserNamespace.inside(USER, 59999)).isZero();
        assertThat(UserNamespace.inside(RANGES, 100000 + 33)).isEqualTo(33);
        assertThat(UserNamespace.inside(RANGES, 1000)).isEqualTo(65536);
        assertThat(UserNamespace.inside(EVERY_ID, 4242)).isEqualTo(4242);
    }

    @Test
    void anIdWithoutAMappingIsTheOverflowId() {
        assertThat(UserNamespace.inside(USER, 0)).isEqualTo(UserNamespace.OVERFLOW_ID);
        assertThat(UserNamespace.inside(RANGES, 100000 + 65536)).isEqualTo(UserNamespace.OVERFLOW_ID);
    }
}
