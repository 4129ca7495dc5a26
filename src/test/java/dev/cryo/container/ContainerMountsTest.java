package dev.cryo.container;

import dev.cryo.core.Refusal;
import dev.cryo.image.proto.ContainerMount;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.ns.Mounts;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Which of a container's mounts (mountinfo as its pid 1 showed it, recorded) are its own, and how
 * restore makes each again; the mounts `cryo run` made are recognised by id and place.
 */
class ContainerMountsTest {
    private static final String BASE = """
            110 42 0:40 / / rw,relatime - overlay overlay rw,lowerdir=/tmp/t/rootfs:/usr,upperdir=/run/cryo/c/upper
            114 110 254:0 /tmp/t/vol /vol rw,relatime - ext4 /dev/vda rw,discard
            63 110 0:42 / /dev rw,nosuid,relatime - tmpfs tmpfs rw,size=1024k,mode=755
            86 110 0:43 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
            """;
    private static final ContainerRecord RECORD = ContainerRecord.newBuilder().setName("c")
            .setInitPid((int) ProcessHandle.current().pid())
            .addAllBaseMounts(List.of("110 / (overlay) rw,relatime", "114 /vol (ext4) rw,relatime", "63 /dev (tmpfs) rw,nosuid,relatime",
                    "86 /proc (proc) rw,nosuid,nodev,noexec,relatime")).build();

    @Test
    void ownMountsParentsFirstWithBindSourcesInsideTheContainer() {
        List<ContainerMount> own = ContainerMounts.own(RECORD, Mounts.parse(BASE + """
                92 93 0:50 / /a/b rw,relatime - tmpfs tmpfs rw,size=8k
                93 110 0:49 / /a rw,nosuid,relatime - tmpfs tmpfs rw,size=64k,inode64
                94 110 254:0 /tmp/t/vol/sub /srv ro,nodev,relatime - ext4 /dev/vda rw,discard
                95 110 0:40 /data /data2 rw,noatime - overlay overlay rw,lowerdir=/tmp/t/rootfs:/usr,upperdir=/run/cryo/c/upper
                96 110 0:51 / /sys rw,nosuid,relatime - sysfs sysfs rw
                97 110 0:52 / /dev/pts rw,relatime unbindable - devpts devpts rw,mode=600,ptmxmode=666
                98 110 0:49 / /a2 rw,relatime - tmpfs tmpfs rw,size=64k
                """));
        assertThat(own).extracting(ContainerMount::getMountPoint).containsExactly("/a", "/a/b", "/srv", "/data2", "/sys", "/dev/pts",
                "/a2");
        assertThat(own.get(6).getSource()).as("a bind of a whole tmpfs").isEqualTo("/a");
        assertThat(own.get(0).getKind()).isEqualTo(ContainerMount.Kind.TMPFS);
        assertThat(own.get(0).getData()).isEqualTo("size=64k");
        assertThat(own.get(2).getKind()).isEqualTo(ContainerMount.Kind.BIND);
        assertThat(own.get(2).getSource()).as("a bind of part of a volume").isEqualTo("/vol/sub");
        assertThat(own.get(2).getFlags()).isEqualTo(Mounts.MS_RDONLY | 4 /* MS_NODEV */);
        assertThat(own.get(3).getSource()).as("a bind of the root's /data").isEqualTo("/data");
        assertThat(own.get(3).getFlags()).isEqualTo(1024 /* MS_NOATIME */);
        assertThat(own.get(4).getKind()).isEqualTo(ContainerMount.Kind.PSEUDO);
        assertThat(own.get(4).getFsType()).isEqualTo("sysfs");
        assertThat(own.get(5).getData()).isEqualTo("mode=600,ptmxmode=666");
        assertThat(own.get(5).getUnbindable()).isTrue();
    }

    @Test
    void flagsChangedOnAMountEveryContainerGetsAreKept() {
        List<ContainerMount> own = ContainerMounts.own(RECORD, Mounts.parse(BASE.replace("/ rw,relatime", "/ ro,relatime")
                .replace("/proc rw,nosuid,nodev,noexec,relatime", "/proc rw,nosuid,nodev,noexec,noatime")));
        assertThat(own).extracting(m -> m.getKind() + " " + m.getMountPoint() + " " + m.getFlags())
                .containsExactly("REMOUNT / 1", "REMOUNT /proc " + (2 | 4 | 8 | 1024));
        assertThat(ContainerMounts.own(RECORD, Mounts.parse(BASE))).as("nothing changed, nothing of its own").isEmpty();
    }

    @Test
    void whatRestoreCannotMakeIsRefusedEachByName() {
        assertThatThrownBy(() -> ContainerMounts.own(RECORD, Mounts.parse(BASE + """
                95 110 0:40 /gone//deleted /x rw,relatime - overlay overlay rw
                96 110 8:16 / /mnt/disk rw,relatime - ext4 /dev/sdb rw
                97 110 0:52 / /mnt/f rw,nosuid,nodev,relatime - fuse.sshfs host:/ rw,user_id=0
                98 110 0:53 / /y rw,relatime shared:907 - tmpfs none rw
                99 110 0:54 / /z rw,relatime - tmpfs none rw
                100 110 0:55 / /z rw,relatime - tmpfs none rw
                101 110 0:56 / /n rw,relatime - nfs4 server:/export rw
                102 110 0:57 / /m/deep rw,relatime - tmpfs none rw
                103 110 0:58 / /m rw,relatime - tmpfs none rw
                """))).isInstanceOf(Refusal.class).hasMessageContainingAll(
                "container c has mounts restore cannot make again: /x (overlay): a bind of /gone, a directory deleted since",
                "/mnt/disk (ext4): a file system on block device /dev/sdb", "/mnt/f (fuse.sshfs): a FUSE file system (host:/)",
                "/y (tmpfs): a shared mount (peer group 907)", "/z (tmpfs): a tmpfs hidden under /z (tmpfs), mounted later",
                "/n (nfs4): a network file system (server:/export)", "/m/deep (tmpfs): a tmpfs hidden under /m (tmpfs)")
                .hasMessageNotContaining("/m (tmpfs):");
    }
}
