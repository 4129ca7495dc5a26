package dev.cryo.cgroup;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Finding a saved cgroup's directory from recorded mountinfo and /proc/PID/cgroup texts. */
class HierarchiesTest {
    /** A hybrid machine: v2 at .../unified, cpu and cpuacct together, a named hierarchy, a subtree bind-mounted. */
    private static final String HYBRID = """
            31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
            39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:7 - cgroup cgroup rw,pids
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
            50 23 0:33 /jobs /srv/job\\040cgroups rw,relatime - cgroup cgroup rw,freezer
            """;

    private final Hierarchies here = Hierarchies.parse(HYBRID);

    @Test
    void findsEachHierarchyByItsControllers() {
        assertThat(here.directory("", "/a/b")).isEqualTo(Path.of("/sys/fs/cgroup/unified/a/b"));
        assertThat(here.directory("memory", "/svc")).isEqualTo(Path.of("/sys/fs/cgroup/memory/svc"));
        assertThat(here.directory("cpu,cpuacct", "/svc")).isEqualTo(Path.of("/sys/fs/cgroup/cpu,cpuacct/svc"));
        assertThat(here.directory("cpu", "/svc")).as("saved where cpu was alone").isEqualTo(Path.of("/sys/fs/cgroup/cpu,cpuacct/svc"));
        assertThat(here.directory("name=systemd", "/")).isEqualTo(Path.of("/sys/fs/cgroup/systemd"));
        assertThat(here.directory("blkio", "/svc")).as("not mounted").isNull();
    }

    @Test
    void aSubtreeMountShowsOnlyItsSubtree() {
        assertThat(here.directory("freezer", "/jobs/j1")).isEqualTo(Path.of("/srv/job cgroups/j1"));
        assertThat(here.directory("freezer", "/jobs")).isEqualTo(Path.of("/srv/job cgroups"));
        assertThat(here.directory("freezer", "/jobsX")).isNull();
        assertThat(here.directory("freezer", "/other")).isNull();
    }

    @Test
    void readsProcCgroupLines() {
        Map<String, String> m = Hierarchies.membership("9:name=systemd:/\n2:cpu,cpuacct:/a:b\n0::/svc\n");
        assertThat(m).containsExactly(Map.entry("name=systemd", "/"), Map.entry("cpu,cpuacct", "/a:b"), Map.entry("", "/svc"));
    }
}
