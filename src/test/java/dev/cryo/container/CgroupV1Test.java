package dev.cryo.container;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** Limits between their v2 form (the image's) and the files of a v1 cgroup, on files as the kernel shows them. */
class CgroupV1Test {
    @TempDir
    Path dir;

    @Test
    void memoryUnlimitedReadsAsMaxAndMaxIsWrittenAsMinusOne() throws IOException {
        Files.writeString(dir.resolve("memory.limit_in_bytes"), "9223372036854771712\n");
        assertThat(CgroupV1.controllerOf(dir)).isEqualTo("memory");
        assertThat(CgroupV1.read(dir, "memory.max")).isEqualTo("max");
        CgroupV1.write(dir, "memory.max", "max");
        assertThat(Files.readString(dir.resolve("memory.limit_in_bytes"))).isEqualTo("-1");
        Files.writeString(dir.resolve("memory.limit_in_bytes"), "67108864\n");
        assertThat(CgroupV1.read(dir, "memory.max")).isEqualTo("67108864");
    }

    @Test
    void cpuMaxIsQuotaAndPeriod() throws IOException {
        Files.writeString(dir.resolve("cpu.cfs_quota_us"), "-1\n");
        Files.writeString(dir.resolve("cpu.cfs_period_us"), "100000\n");
        assertThat(CgroupV1.controllerOf(dir)).isEqualTo("cpu");
        assertThat(CgroupV1.read(dir, "cpu.max")).isEqualTo("max 100000");
        CgroupV1.write(dir, "cpu.max", "50000 200000");
        assertThat(Files.readString(dir.resolve("cpu.cfs_quota_us"))).isEqualTo("50000");
        assertThat(Files.readString(dir.resolve("cpu.cfs_period_us"))).isEqualTo("200000");
        assertThat(CgroupV1.read(dir, "cpu.max")).isEqualTo("50000 200000");
    }

    @Test
    void pidsMaxIsTheSameFile() throws IOException {
        Files.writeString(dir.resolve("pids.max"), "max\n");
        assertThat(CgroupV1.controllerOf(dir)).isEqualTo("pids");
        assertThat(CgroupV1.read(dir, "pids.max")).isEqualTo("max");
        CgroupV1.write(dir, "pids.max", "5");
        assertThat(CgroupV1.read(dir, "pids.max")).isEqualTo("5");
        assertThat(CgroupV1.controller("pids.max")).isEqualTo("pids");
    }
}
