package dev.cryo.ns;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** mountinfo as a container's pid 1 showed it (recorded), with a mount point holding a space. */
class MountsTest {
    private static final String MOUNTINFO = """
            1380 1355 0:83 / / rw,relatime - overlay overlay rw,lowerdir=/tmp/r:/usr,upperdir=/run/cryo/a/upper,workdir=/run/cryo/a/work
            1381 1380 0:84 / /dev rw,nosuid,relatime - tmpfs tmpfs rw,size=1024k,mode=755
            1382 1380 0:85 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
            1383 1380 0:86 / /my\\040data rw,relatime shared:5 - tmpfs none rw
            1384 1380 0:83 /old\\040dir//deleted /x ro,nosuid,noatime master:3 propagate_from:2 - overlay overlay rw
            """;

    @Test
    void mountPointsWithTheirTypes() {
        assertThat(Mounts.parse(MOUNTINFO).stream().map(Mounts.Mount::describe)).containsExactly("/ (overlay)", "/dev (tmpfs)", "/proc (proc)",
                "/my data (tmpfs)", "/x (overlay)");
    }

    @Test
    void everyField() {
        List<Mounts.Mount> mounts = Mounts.parse(MOUNTINFO);
        Mounts.Mount shared = mounts.get(3);
        assertThat(shared.id()).isEqualTo(1383);
        assertThat(shared.parentId()).isEqualTo(1380);
        assertThat(shared.device()).isEqualTo("0:86");
        assertThat(shared.sharedGroup()).isEqualTo(5);
        assertThat(shared.masterGroup()).isZero();
        assertThat(shared.source()).isEqualTo("none");
        Mounts.Mount bind = mounts.get(4);
        assertThat(bind.root()).isEqualTo("/old dir//deleted");
        assertThat(bind.propagation()).containsExactly("master:3", "propagate_from:2");
        assertThat(bind.masterGroup()).isEqualTo(3);
        assertThat(bind.sharedGroup()).isZero();
        assertThat(bind.flags()).isEqualTo(Mounts.MS_RDONLY | 2 /* MS_NOSUID */ | 1024 /* MS_NOATIME */);
        assertThat(mounts.get(1).data()).isEqualTo("size=1024k,mode=755");
        assertThat(mounts.get(2).data()).isEmpty();
    }
}
