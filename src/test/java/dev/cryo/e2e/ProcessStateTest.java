package dev.cryo.e2e;

import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * State of a process beyond plain memory and fds: file mappings that stay connected to their
 * files ({@code mapped_file.c}), and scheduling, robust list, tid address, rseq and credentials
 * ({@code taskstate.c}). Each target checks itself before the checkpoint and after the restore.
 */
class ProcessStateTest extends TargetTest {
    /** Lines of /proc/PID/status that describe credentials, compared before and after. */
    private static final List<String> CREDENTIAL_LINES = List.of(
            "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs");

    @Test
    void fileMappingsStayConnectedToTheirFiles() throws Exception {
        Target t = startReady("mapped_file");
        assertThat(t.check(CHECK)).as("before checkpoint: " + t.log()).isEqualTo("PASS");
        assertSharedValue(t, 1);

        checkpointAndRestore(t, tmp.resolve("img"));

        assertThat(t.check(CHECK)).as("first check after restore: " + t.log()).isEqualTo("PASS");
        assertSharedValue(t, 2);
        assertThat(t.check(CHECK)).as("second check after restore: " + t.log()).isEqualTo("PASS");
        assertSharedValue(t, 3);
    }

    /**
     * The value the target wrote last through its MAP_SHARED mapping is in STATE/shared_value,
     * and it must be what the file itself now starts with.
     */
    private static void assertSharedValue(Target t, long expected) throws IOException {
        String published = Files.readString(t.stateDir().resolve("shared_value")).strip();
        assertThat(published).as("STATE/shared_value").isEqualTo(Long.toString(expected));
        byte[] head = new byte[32];
        int n;
        try (InputStream in = Files.newInputStream(t.stateDir().resolve("shared.bin"))) {
            n = in.readNBytes(head, 0, head.length);
        }
        int end = 0;
        while (end < n && head[end] != 0) {
            end++;
        }
        String inFile = new String(head, 0, end, StandardCharsets.US_ASCII).strip();
        assertThat(inFile).as("first bytes of STATE/shared.bin, written through the mapping").isEqualTo(published);
    }

    @Test
    void schedulingRobustListTidAddressRseqAndCredentials() throws Exception {
        Path state = Files.createDirectories(tmp.resolve("taskstate-state"));
        // The target drops root during setup and still writes STATE/ready and STATE/result.
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwx--x--x"));
        Files.setPosixFilePermissions(state, PosixFilePermissions.fromString("rwxrwxrwx"));
        Target t = track(Target.startProgram("taskstate", state));
        t.awaitReady(READY);
        assertThat(t.check(CHECK)).as("before checkpoint: " + t.log()).isEqualTo("PASS");
        Map<String, String> before = credentials(t.pid());
        assertThat(before.get("Uid")).isEqualTo("2001\t2002\t2003\t2002");

        checkpointAndRestore(t, tmp.resolve("img"));

        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
        assertThat(credentials(t.pid())).as("credentials in /proc/PID/status").isEqualTo(before);
        assertThat(t.check(CHECK)).as("second check after restore: " + t.log()).isEqualTo("PASS");
    }

    private static Map<String, String> credentials(long pid) throws IOException {
        Map<String, String> found = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
            int colon = line.indexOf(':');
            if (colon > 0 && CREDENTIAL_LINES.contains(line.substring(0, colon))) {
                found.put(line.substring(0, colon), line.substring(colon + 1).strip());
            }
        }
        return found;
    }
}
