package dev.cryo.cli;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.instruction.DiscontinuedInstruction;
import java.lang.constant.ClassDesc;
import java.lang.constant.ConstantDescs;
import java.lang.constant.MethodTypeDesc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * bin/build rewrites picocli's Java 5 class files to version 52 with stack maps
 * (build/UpgradeClassFiles.java) so that the AOT cache can hold them. This runs the tool on the
 * picocli jar Cryo is tested with and proves the result: every class new enough, nothing lost,
 * and a real {@code cryo} JVM, whose verifier checks every new stack map of the classes it loads,
 * printing exactly the help it prints with the original jar.
 */
class UpgradedPicocliTest {
    private static final Path TOOL = Path.of(System.getProperty("basedir", ""), "build", "UpgradeClassFiles.java");
    private static final Path JAVA = Path.of(System.getProperty("java.home"), "bin", "java");

    @TempDir
    static Path work;
    static Path original;
    static Path upgraded;
    static Run upgrade;

    record Run(int exitCode, String out, String err) {
        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- out:\n" + out + "--- err:\n" + err;
        }
    }

    @BeforeAll
    static void upgradePicocli() throws Exception {
        original = testClassPath().stream().filter(p -> p.getFileName().toString().matches("picocli-.*\\.jar"))
                .findFirst().orElseThrow(() -> new AssertionError("no picocli jar on " + testClassPath()));
        upgraded = work.resolve("picocli-upgraded.jar");
        upgrade = run(List.of(JAVA.toString(), TOOL.toString(), original.toString(), upgraded.toString()));
    }

    @Test
    void everyOldClassIsUpgradedAndSaysHowMany() throws IOException {
        assertThat(upgrade.exitCode()).as(upgrade.toString()).isZero();
        long old = majorVersions(original).values().stream().filter(v -> v < 50).count();
        assertThat(old).as("picocli still ships old class files, or this test is moot").isPositive();
        assertThat(upgrade.out().lines().toList()).as(upgrade.toString())
                .containsExactly("UpgradeClassFiles: upgraded " + old + " class files of " + original.getFileName()
                        + " to version 52");
        assertThat(majorVersions(upgraded)).as("major version by class")
                .allSatisfy((name, version) -> assertThat(version).as(name).isGreaterThanOrEqualTo(50));
    }

    @Test
    void keepsEveryEntryInOrderAndLeavesNewerClassesAlone() throws IOException {
        assertThat(entryNames(upgraded)).containsExactlyElementsOf(entryNames(original));
        for (String name : entryNames(original)) {
            byte[] before = bytesOf(original, name);
            if (!name.endsWith(".class") || majorVersion(before) >= 50) {
                assertThat(bytesOf(upgraded, name)).as(name).isEqualTo(before);
            }
        }
    }

    @Test
    void cryoPrintsTheSameHelpWithTheUpgradedJar() throws Exception {
        for (String command : List.of("--help", "checkpoint --help")) {
            Run before = cryo(original, command);
            Run after = cryo(upgraded, command);
            assertThat(after.exitCode()).as(command + " " + after).isZero();
            assertThat(after.out()).as(command).startsWith("Usage: cryo").isEqualTo(before.out());
            assertThat(after.err()).as(command).isEqualTo(before.err());
        }
    }

    @Test
    void refusesAClassWithSubroutinesAndWritesNothing() throws Exception {
        Path jar = work.resolve("jsr.jar");
        try (ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(jar))) {
            zip.putNextEntry(new ZipEntry("old/Finally.class"));
            zip.write(classWithSubroutine());
            zip.closeEntry();
        }
        Path out = work.resolve("jsr-upgraded.jar");
        Run r = run(List.of(JAVA.toString(), TOOL.toString(), jar.toString(), out.toString()));
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).as(r.toString()).contains("old/Finally.class").contains("jsr/ret");
        assertThat(out).doesNotExist();
    }

    /** A Java 5 class whose method calls a subroutine, as javac compiled `finally` before Java 6. */
    private static byte[] classWithSubroutine() {
        return ClassFile.of(ClassFile.StackMapsOption.DROP_STACK_MAPS).build(ClassDesc.of("old.Finally"), c -> c
                .withVersion(ClassFile.JAVA_5_VERSION, 0)
                .withMethodBody("run", MethodTypeDesc.of(ConstantDescs.CD_void), ClassFile.ACC_PUBLIC | ClassFile.ACC_STATIC,
                        code -> {
                            var subroutine = code.newLabel();
                            code.with(DiscontinuedInstruction.JsrInstruction.of(subroutine));
                            code.return_();
                            code.labelBinding(subroutine);
                            code.astore(0);
                            code.with(DiscontinuedInstruction.RetInstruction.of(0));
                        }));
    }

    /** `cryo COMMAND` in a child JVM whose class path has {@code picocli} in place of the tested one. */
    private static Run cryo(Path picocli, String command) throws Exception {
        List<String> classPath = new ArrayList<>();
        for (Path entry : testClassPath()) {
            classPath.add((entry.equals(original) ? picocli : entry).toString());
        }
        List<String> cmd = new ArrayList<>(List.of(JAVA.toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", String.join(File.pathSeparator, classPath), Main.class.getName()));
        cmd.addAll(Arrays.asList(command.split(" ")));
        return run(cmd);
    }

    private static Run run(List<String> cmd) throws Exception {
        Path out = Files.createTempFile(work, "out", ".txt");
        Path err = Files.createTempFile(work, "err", ".txt");
        Process p = new ProcessBuilder(cmd).redirectInput(new File("/dev/null"))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as(String.join(" ", cmd)).isTrue();
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    private static List<Path> testClassPath() {
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        return Arrays.stream(classPath.split(File.pathSeparator)).filter(s -> !s.isEmpty()).map(Path::of).toList();
    }

    private static List<String> entryNames(Path jar) throws IOException {
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            return Collections.list(zip.entries()).stream().map(ZipEntry::getName).toList();
        }
    }

    private static byte[] bytesOf(Path jar, String name) throws IOException {
        try (ZipFile zip = new ZipFile(jar.toFile()); InputStream in = zip.getInputStream(zip.getEntry(name))) {
            return in.readAllBytes();
        }
    }

    private static Map<String, Integer> majorVersions(Path jar) throws IOException {
        Map<String, Integer> versions = new LinkedHashMap<>();
        for (String name : entryNames(jar)) {
            if (name.endsWith(".class")) {
                versions.put(name, majorVersion(bytesOf(jar, name)));
            }
        }
        return versions;
    }

    /** Bytes 6-7 of a class file, after the magic number and the minor version. */
    private static int majorVersion(byte[] classFile) {
        return ((classFile[6] & 0xff) << 8) | (classFile[7] & 0xff);
    }
}
