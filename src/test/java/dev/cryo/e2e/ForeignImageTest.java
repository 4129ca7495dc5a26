package dev.cryo.e2e;

import com.google.protobuf.Message;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.image.proto.SignalsImage;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.TimersImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.UnaryOperator;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Images that are well-formed but describe what this machine cannot give back: a CPU feature it
 * lacks. Such an image is refused before any process is created, naming the reason.
 */
class ForeignImageTest extends TargetTest {
    @Test
    void restoreOnACpuLackingASavedXsaveFeatureIsRefused() throws Exception {
        Target target = startReady("counter");
        Path original = tmp.resolve("original");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", original.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        target.awaitPidFree(PID_FREE);

        // The same image, as if taken on a CPU with AMX (XCR0 bits 17 and 18), which this one lacks.
        long amx = (1L << 17) | (1L << 18);
        Assumptions.assumeFalse(Files.readString(Path.of("/proc/cpuinfo")).contains("amx_tile"), "this CPU has AMX");
        Path foreign = tmp.resolve("foreign");
        rewrite(original, foreign, core -> core.toBuilder().setXfeatures(core.getXfeatures() | amx).build());

        CryoCli.Result restore = CryoCli.run("restore", "-D", foreign.toString(), "-d");
        assertThat(restore.exitCode()).isNotZero();
        assertThat(restore.err()).contains("Error:").contains("xsave features").contains("0x60000");
        assertThat(ProcFiles.exists((int) target.pid())).as("no process was created").isFalse();

        // and the untouched image still restores
        CryoCli.Result good = CryoCli.run("restore", "-D", original.toString(), "-d");
        assertThat(good.exitCode()).as(good.toString()).isZero();
        assertThat(target.check(CHECK)).isEqualTo("PASS");
    }

    /** Copies an image through the image API, changing the task's core on the way; checksums stay valid. */
    private static void rewrite(Path from, Path to, UnaryOperator<TaskCore> change) throws Exception {
        ImageReader in = ImageReader.open(from, true);
        int pid = in.inventory().getRootPid();
        ImageWriter out = new ImageWriter(to);
        out.write(ImageKind.CORE, pid, change.apply(in.read(ImageKind.CORE, pid, TaskCore.parser())));
        out.write(ImageKind.PSTREE, 0, in.read(ImageKind.PSTREE, 0, PstreeImage.parser()));
        copy(in, out, ImageKind.MM, pid, MmImage.parser());
        copy(in, out, ImageKind.PAGEMAP, pid, PagemapImage.parser());
        copy(in, out, ImageKind.FILES, pid, FilesImage.parser());
        copy(in, out, ImageKind.SIGNALS, pid, SignalsImage.parser());
        copy(in, out, ImageKind.TIMERS, pid, TimersImage.parser());
        try (PageFileWriter pages = out.pages(pid);
             FileChannel ch = FileChannel.open(in.path(ImageKind.PAGES, pid), StandardOpenOption.READ)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            while (ch.read(buf) > 0) {
                buf.flip();
                pages.write(buf);
                buf.clear();
            }
        }
        out.finish(in.inventory().toBuilder());
    }

    private static <T extends Message> void copy(ImageReader in, ImageWriter out, ImageKind kind, int pid,
                                                 com.google.protobuf.Parser<T> parser) {
        out.write(kind, pid, in.read(kind, pid, parser));
    }
}
