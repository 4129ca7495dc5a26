package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A restored task starts from the restorer's no_new_privs and capability bounding set and can
 * only narrow them: a restore run from a caller that set one or dropped the other is refused
 * before anything is made, and the same image then restores from an unrestricted caller.
 */
class RestorerPrivilegesTest extends TargetTest {

    @Test
    void aRestoreWithNoNewPrivsTheProcessDidNotHaveIsRefused() throws Exception {
        refusedUnder(List.of("--no-new-privs"), "did not have no_new_privs");
    }

    @Test
    void aRestoreWithoutABoundingCapabilityTheProcessHadIsRefused() throws Exception {
        refusedUnder(List.of("--bounding-set", "-sys_nice"), "CAP_SYS_NICE");
    }

    private void refusedUnder(List<String> restrictions, String because) throws Exception {
        Target t = startReady("counter");
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        t.awaitPidFree(PID_FREE);

        // cryo's real main in a JVM of its own, started by setpriv with the restriction
        List<String> cmd = new ArrayList<>(List.of("setpriv"));
        cmd.addAll(restrictions);
        cmd.addAll(CryoCli.inOwnJvm("restore", "-D", images.toString(), "-d"));
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("restore under " + restrictions).isTrue();
        assertThat(p.exitValue()).as("restore under " + restrictions + ": " + err).isNotZero();
        assertThat(err).as("restore under " + restrictions).contains(because);
        assertThat(Procs.exists(t.pid())).as("nothing was restored under " + restrictions).isFalse();

        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as("the same image from an unrestricted caller: " + restore).isZero();
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }
}
