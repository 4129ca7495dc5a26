/*
 * UpgradeClassFiles IN.jar OUT.jar: copies a jar, rewriting every class file older than version
 * 50 (Java 6) to version 52 (Java 8) with freshly generated stack maps; every other entry is
 * copied unchanged, in the same order, with its timestamp.
 *
 * Why: the JDK 25 ahead-of-time cache (target/cryo.aot, trained by bin/build) cannot hold class
 * files older than version 50, which must be checked by the old type-inferring verifier. picocli
 * 4.7.7 ships Java 5 class files, so ~170 of its classes were parsed, verified and linked from
 * the jar at every `cryo` start. Version 52 with a StackMapTable lets the cache hold them:
 * `cryo --version` went from 0.20 s to 0.15 s, a small checkpoint from 0.24 s to 0.20 s.
 * Only the version and the StackMapTable attributes change; the bytecode means the same.
 *
 * Run with the JDK's source launcher: $JAVA_HOME/bin/java build/UpgradeClassFiles.java IN OUT
 * Exit 0 with one line saying how many classes were upgraded; 1 if a class cannot be upgraded
 * (named in the message) or the jar cannot be read; 2 on bad usage. OUT is never left half
 * written.
 */

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassFileVersion;
import java.lang.classfile.ClassHierarchyResolver;
import java.lang.classfile.ClassModel;
import java.lang.classfile.ClassTransform;
import java.lang.classfile.CodeModel;
import java.lang.classfile.CodeTransform;
import java.lang.classfile.MethodModel;
import java.lang.classfile.instruction.DiscontinuedInstruction;
import java.lang.constant.ClassDesc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

public final class UpgradeClassFiles {
    private UpgradeClassFiles() {
    }

    /** Thrown for a class that this tool must not or cannot rewrite; the message names it. */
    private static final class CannotUpgrade extends Exception {
        CannotUpgrade(String message) {
            super(message);
        }
    }

    /** Class files from 50 on carry stack maps; the AOT cache holds only those. */
    private static final int FIRST_SPLIT_VERIFIED = ClassFile.JAVA_6_VERSION;
    /** Java 8: old enough for anything the jar's code does, new enough for the cache. */
    private static final int TARGET = ClassFile.JAVA_8_VERSION;

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: java build/UpgradeClassFiles.java IN.jar OUT.jar");
            System.exit(2);
        }
        Path in = Path.of(args[0]);
        Path out = Path.of(args[1]);
        try {
            int upgraded = upgradeJar(in, out);
            System.out.println("UpgradeClassFiles: upgraded " + upgraded + " class files of " + in.getFileName()
                    + " to version " + TARGET);
        } catch (CannotUpgrade e) {
            fail(in, out, e.getMessage());
        } catch (IOException | RuntimeException e) {
            fail(in, out, e.toString());
        }
    }

    /** Copies IN to OUT entry by entry, upgrading old class files; returns how many it upgraded. */
    static int upgradeJar(Path in, Path out) throws IOException, CannotUpgrade {
        try (ZipFile jar = new ZipFile(in.toFile());
                ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(out))) {
            refuseSigned(jar);
            ClassFile classFile = classFileFor(jar);
            int upgraded = 0;
            // entries() follows the central directory, i.e. the original order (manifest first).
            for (ZipEntry entry : Collections.list(jar.entries())) {
                byte[] bytes;
                try (InputStream data = jar.getInputStream(entry)) {
                    bytes = data.readAllBytes();
                }
                if (needsUpgrade(entry, bytes)) {
                    bytes = upgradeClass(classFile, entry.getName(), bytes);
                    upgraded++;
                }
                zip.putNextEntry(copyOf(entry));
                zip.write(bytes);
                zip.closeEntry();
            }
            return upgraded;
        }
    }

    /** A rewritten class would no longer match a signature; better to say so than ship a broken jar. */
    static void refuseSigned(ZipFile jar) throws CannotUpgrade {
        for (ZipEntry entry : Collections.list(jar.entries())) {
            String name = entry.getName();
            if (name.startsWith("META-INF/") && (name.endsWith(".SF") || name.endsWith(".RSA")
                    || name.endsWith(".DSA") || name.endsWith(".EC"))) {
                throw new CannotUpgrade("the jar is signed (" + name + "); upgraded classes would break the signature");
            }
        }
    }

    /**
     * Stack map generation has to know the common super class where two types meet at a branch:
     * JDK classes are found through the system class loader, the jar's own by parsing them from the
     * jar (they are not on this tool's class path). Classes under META-INF/versions stand for the
     * same names, so the root entries are the ones consulted.
     */
    static ClassFile classFileFor(ZipFile jar) {
        ClassHierarchyResolver ofThisJar = ClassHierarchyResolver.ofResourceParsing((ClassDesc desc) -> {
            ZipEntry entry = jar.getEntry(internalName(desc) + ".class");
            try {
                return entry == null ? null : jar.getInputStream(entry);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        ClassHierarchyResolver resolver = ofThisJar.orElse(ClassHierarchyResolver.defaultResolver()).cached();
        return ClassFile.of(ClassFile.StackMapsOption.GENERATE_STACK_MAPS,
                ClassFile.ClassHierarchyResolverOption.of(resolver));
    }

    /** "Ljava/lang/Object;" -> "java/lang/Object". */
    static String internalName(ClassDesc desc) {
        String descriptor = desc.descriptorString();
        return descriptor.substring(1, descriptor.length() - 1);
    }

    /**
     * A class file whose major version (bytes 6-7 after the magic number) is below 50. Only the header
     * is read: most entries of a jar that is already new enough are never parsed.
     */
    static boolean needsUpgrade(ZipEntry entry, byte[] bytes) {
        if (entry.isDirectory() || !entry.getName().endsWith(".class") || bytes.length < 8) {
            return false;
        }
        int magic = ((bytes[0] & 0xff) << 24) | ((bytes[1] & 0xff) << 16) | ((bytes[2] & 0xff) << 8) | (bytes[3] & 0xff);
        int major = ((bytes[6] & 0xff) << 8) | (bytes[7] & 0xff);
        return magic == ClassFile.MAGIC_NUMBER && major < FIRST_SPLIT_VERIFIED;
    }

    /**
     * The class at the target version. Every method body goes through a (pass-through) code
     * transform: without one, the Code attributes would be copied as they are, with no stack maps.
     * The result is checked by the JDK's own verifier, so a class that would fail at run time is
     * refused here, at build time.
     */
    static byte[] upgradeClass(ClassFile classFile, String name, byte[] bytes) throws CannotUpgrade {
        ClassModel model = classFile.parse(bytes);
        refuseSubroutines(model, name);
        ClassTransform atTargetVersion = (builder, element) -> {
            if (element instanceof ClassFileVersion) {
                builder.withVersion(TARGET, 0);
            } else {
                builder.with(element);
            }
        };
        byte[] upgraded;
        try {
            upgraded = classFile.transformClass(model,
                    ClassTransform.transformingMethodBodies(CodeTransform.ACCEPT_ALL).andThen(atTargetVersion));
        } catch (IllegalArgumentException e) {
            // e.g. a type the hierarchy resolver cannot find, so no stack map can be computed
            throw new CannotUpgrade(name + ": cannot generate stack maps: " + e.getMessage());
        }
        List<VerifyError> errors = classFile.verify(upgraded);
        if (!errors.isEmpty()) {
            throw new CannotUpgrade(name + ": the upgraded class does not verify: " + errors.getFirst().getMessage());
        }
        return upgraded;
    }

    /**
     * jsr/ret (finally blocks of compilers before Java 6) are forbidden from version 51 on and have
     * no stack map form; inlining the subroutines is more than this tool should do.
     */
    static void refuseSubroutines(ClassModel model, String name) throws CannotUpgrade {
        for (MethodModel method : model.methods()) {
            CodeModel code = method.code().orElse(null);
            if (code == null) {
                continue;
            }
            for (var element : code) {
                if (element instanceof DiscontinuedInstruction) {
                    throw new CannotUpgrade(name + ": method " + method.methodName().stringValue()
                            + " uses jsr/ret subroutines, which version " + TARGET + " forbids");
                }
            }
        }
    }

    /**
     * A fresh entry (size and CRC are recomputed for the new bytes, everything is deflated) with the
     * original's timestamp and comment.
     */
    static ZipEntry copyOf(ZipEntry original) {
        ZipEntry copy = new ZipEntry(original.getName());
        copy.setTime(original.getTime());
        copy.setComment(original.getComment());
        return copy;
    }

    private static void fail(Path in, Path out, String why) {
        deleteQuietly(out);
        System.err.println("UpgradeClassFiles: " + in + " left as it is: " + why);
        System.exit(1);
    }

    static void deleteQuietly(Path path) {
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // the original message matters more than a leftover file
        }
    }
}
