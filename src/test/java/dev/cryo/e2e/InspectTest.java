package dev.cryo.e2e;

import com.google.protobuf.Message;
import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.image.proto.Inventory;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.SignalsImage;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.TimersImage;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code cryo inspect} of a real image (the files target, saved while it kept running), checked
 * against what /proc showed of the process: every memory area, every fd, its signal state; and
 * {@code --json}, which must be valid JSON holding the image's metadata, each part exactly as
 * the image has it.
 */
class InspectTest extends TargetTest {

    @Test
    void describesProcessMemoryFilesAndSignals() {
        Target t = startReady("files");
        Procs.Snapshot before = Procs.snapshot(t.pid());
        Path images = checkpointLeavingRunning(t);

        CryoCli.Result r = CryoCli.run("inspect", images.toString());
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(r.err()).isEmpty();
        String out = r.out();
        assertThat(out).contains("Process " + t.pid() + " (files)");
        assertThat(out).contains("Memory: " + before.maps().size() + " areas");
        for (String line : before.maps()) {
            String[] range = line.split(" ")[0].split("-");
            assertThat(out).as("area " + line).contains(String.format("%012x-%012x",
                    Long.parseUnsignedLong(range[0], 16), Long.parseUnsignedLong(range[1], 16)));
        }
        assertThat(out).contains("Files: " + before.fds().size() + " fds, cwd " + t.stateDir() + ", root /, umask 027");
        List<String> lines = out.lines().toList();
        for (Map.Entry<Integer, String> fd : before.fds().entrySet()) {
            String path = fd.getValue().substring(0, fd.getValue().indexOf(" flags "));
            assertThat(lines).as("fd " + fd).anySatisfy(l -> assertThat(l.strip())
                    .startsWith(fd.getKey() + " ").contains(path));
        }
        assertThat(lines).anySatisfy(l -> assertThat(l).startsWith("Signals: 1 handlers").contains(" 0 pending"));
        assertThat(out).contains("Timers: 0 interval timers, 0 POSIX timers");
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void jsonIsValidAndHoldsTheImagesMetadataExactly() throws Exception {
        Target t = startReady("counter");
        Path images = checkpointLeavingRunning(t);

        CryoCli.Result r = CryoCli.run("inspect", "--json", images.toString());
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(r.out().strip()).startsWith("{").endsWith("}");
        Struct.Builder json = Struct.newBuilder();
        JsonFormat.parser().merge(r.out(), json);

        int pid = (int) t.pid();
        ImageReader image = ImageReader.open(images, true);
        assertThat(json.getFieldsMap().keySet()).containsExactly("inventory", "pstree", "processes");
        Message.Builder inventory = image.inventory().newBuilderForType();
        JsonFormat.parser().merge(JsonFormat.printer().print(json.getFieldsOrThrow("inventory")), inventory);
        assertThat(inventory.build()).isEqualTo(image.inventory());
        assertThat(json.getFieldsOrThrow("processes").getListValue().getValuesCount()).isEqualTo(1);
        Struct process = json.getFieldsOrThrow("processes").getListValue().getValues(0).getStructValue();
        assertThat(process.getFieldsOrThrow("pid").getNumberValue()).isEqualTo(pid);
        Map<String, Message> expected = new LinkedHashMap<>();
        expected.put("core", image.read(ImageKind.CORE, pid, TaskCore.parser()));
        expected.put("mm", image.read(ImageKind.MM, pid, MmImage.parser()));
        expected.put("pagemap", image.read(ImageKind.PAGEMAP, pid, PagemapImage.parser()));
        expected.put("files", image.read(ImageKind.FILES, pid, FilesImage.parser()));
        expected.put("signals", image.read(ImageKind.SIGNALS, pid, SignalsImage.parser()));
        expected.put("timers", image.read(ImageKind.TIMERS, pid, TimersImage.parser()));
        assertThat(process.getFieldsMap().keySet()).containsAll(expected.keySet());

        for (Map.Entry<String, Message> e : expected.entrySet()) {
            Message.Builder parsed = e.getValue().newBuilderForType();
            JsonFormat.parser().merge(JsonFormat.printer().print(process.getFieldsOrThrow(e.getKey())), parsed);
            assertThat(parsed.build()).as(e.getKey()).isEqualTo(e.getValue());
        }
        assertThat(image.inventory().getRootPid()).isEqualTo(pid);
        assertThat(((MmImage) expected.get("mm")).getVmasCount()).isPositive();
    }

    @Test
    void inspectOfNoImageSaysSo() {
        Path nowhere = tmp.resolve("nothing-here");
        CryoCli.Result r = CryoCli.run("inspect", nowhere.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).startsWith("Error: ").contains(nowhere.toString()).contains("does not exist");
    }

    private Path checkpointLeavingRunning(Target t) {
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString(), "-R");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        return images;
    }
}
