package dev.cryo.ns;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** mountinfo as a container's pid 1 showed it (recorded), with a mount point holding a space. */
class MountsTest {
    private static final String MOUNTINFO = """
            1380 1355 0:83 / / rw,relatime - overlay overlay rw,lowerdir=/tmp/r:/usr,upperdir=/run/cryo/a/upper,workdir=/run/cryo/a/work
            1381 1380 0:84 / /dev rw,nosuid,relatime - tmpfs tmpfs rw,size=1024k,mode=755
            1382 1380 0:85 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
            1383 1380 0:86 / /my\\040data rw,relatime shared:5 - tmpfs none rw
            """;

    @Test
    void mountPointsWithTheirTypes() {
        assertThat(Mounts.parse(MOUNTINFO).stream().map(Mounts.Mount::describe)).containsExactly("/ (overlay)", "/dev (tmpfs)", "/proc (proc)",
                "/my data (tmpfs)");
    }
}
