package dev.cryo.mem;

import dev.cryo.core.Refusal;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.ProcFiles;
import dev.cryo.proc.Vma;
import dev.cryo.remote.RemoteSyscalls;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;

/** Turns a /proc mapping into its image entry: what kind it is and how to mmap it again. */
final class Vmas {
    /** Shared-mapped files up to this size have their contents saved with the image. */
    static final long SMALL_SHARED_FILE = 1 << 20;
    private Vmas() {
    }

    /** @param ipcHost --ipc-host: a SysV shm segment of the host may be attached again by id at restore */
    static VmaKind kind(int pid, Vma vma, boolean ipcHost) {
        switch (vma.path()) {
            case "[vdso]": return VmaKind.VDSO;
            case "[vvar]": return VmaKind.VVAR;
            case "[vvar_vclock]": return VmaKind.VVAR_VCLOCK;
            case "[vsyscall]": return VmaKind.VSYSCALL;
            default:
        }
        if (vma.path().startsWith("/memfd:")) {
            return VmaKind.MEMFD_AREA;
        }
        if (vma.path().startsWith("/SYSV")) {
            if (!ipcHost) {
                throw new Refusal("process " + pid + " has SysV shared memory attached (" + vma + ") from the host's IPC"
                        + " namespace; checkpoint with --ipc-host to leave the segment on the host and attach it again at restore");
            }
            return VmaKind.SYSV_SHM;
        }
        if (vma.path().endsWith(" (deleted)")) {
            if (vma.shared() && !vma.fileBacked()) {
                return VmaKind.SHARED_ANON;
            }
            if (vma.shared() && vma.path().startsWith("/dev/zero")) {
                return VmaKind.SHARED_ANON; // MAP_SHARED of /dev/zero is shmem, like MAP_SHARED|MAP_ANONYMOUS
            }
            throw new Refusal("process " + pid + " maps " + vma + ": mappings of deleted files and SysV shared memory"
                    + " are not supported yet");
        }
        if (!vma.fileBacked()) {
            if (vma.pseudo() && !vma.path().equals("[heap]") && !vma.path().equals("[stack]")) {
                throw new Refusal("process " + pid + " has the special mapping " + vma + ", which Cryo cannot save");
            }
            return vma.shared() ? VmaKind.SHARED_ANON : VmaKind.PRIVATE_ANON;
        }
        if (vma.shared() && vma.inode() != 0 && vma.path().isEmpty()) {
            return VmaKind.SHARED_ANON;
        }
        if (!vma.path().startsWith("/")) {
            throw new Refusal("process " + pid + " maps " + vma + ", a mapping of a kind Cryo cannot save");
        }
        Path file = ProcFiles.inRootOf(pid, vma.path());
        if (!Files.isRegularFile(file)) {
            throw new Refusal("process " + pid + " maps " + vma + ": only regular files can be remapped (device mappings are not supported)");
        }
        return vma.shared() ? VmaKind.SHARED_FILE : VmaKind.PRIVATE_FILE;
    }

    static VmaEntry entry(int pid, Vma vma, boolean ipcHost) {
        VmaKind kind = kind(pid, vma, ipcHost);
        int prot = (vma.readable() ? RemoteSyscalls.PROT_READ : 0) | (vma.writable() ? RemoteSyscalls.PROT_WRITE : 0)
                | (vma.executable() ? RemoteSyscalls.PROT_EXEC : 0);
        int flags = vma.shared() ? RemoteSyscalls.MAP_SHARED : RemoteSyscalls.MAP_PRIVATE;
        if (kind == VmaKind.PRIVATE_ANON || kind == VmaKind.SHARED_ANON) {
            flags |= RemoteSyscalls.MAP_ANONYMOUS;
        }
        VmaEntry.Builder b = VmaEntry.newBuilder().setStart(vma.start()).setEnd(vma.end()).setProt(prot)
                .setFlags(flags).setKind(kind).setPath(vma.path()).setPgoff(vma.offset());
        setVmFlags(b, vma.vmFlags());
        if (kind == VmaKind.SHARED_ANON || kind == VmaKind.MEMFD_AREA || kind == VmaKind.SYSV_SHM) {
            b.setFileInode(vma.inode()); // the shmem object (for SysV shm, its id): the same inode in two processes is one object
        }
        if (kind == VmaKind.PRIVATE_FILE || kind == VmaKind.SHARED_FILE) {
            try {
                Path file = ProcFiles.inRootOf(pid, vma.path());
                PosixFileAttributes a = Files.readAttributes(file, PosixFileAttributes.class);
                b.setFileSize(a.size()).setFileMtimeNs(a.lastModifiedTime().to(java.util.concurrent.TimeUnit.NANOSECONDS))
                        .setFileInode(vma.inode()).setFileMode(FileModes.of(a.permissions()))
                        .setFileUid((Integer) Files.getAttribute(file, "unix:uid"))
                        .setFileGid((Integer) Files.getAttribute(file, "unix:gid"));
                if (kind == VmaKind.SHARED_FILE && a.size() <= SMALL_SHARED_FILE) {
                    // Small shared files are often scratch files another process may delete once
                    // this one is gone (a JVM's hsperfdata): keep their bytes to recreate them.
                    b.setFileContents(com.google.protobuf.ByteString.copyFrom(Files.readAllBytes(file)));
                }
            } catch (IOException e) {
                throw new Refusal("process " + pid + " maps " + vma.path() + ", which Cryo cannot stat: " + e.getMessage());
            }
        }
        return b.build();
    }

    /** The entry with smaps' VmFlags of its area, for an entry made from /proc/PID/maps (which lacks them). */
    static VmaEntry withVmFlags(VmaEntry e, java.util.Set<String> vmFlags) {
        VmaEntry.Builder b = e.toBuilder().clearVmFlags();
        setVmFlags(b, vmFlags);
        return b.build();
    }

    /** VmFlags as the entry keeps them, and the mmap flags they stand for (MAP_GROWSDOWN, MAP_NORESERVE). */
    private static void setVmFlags(VmaEntry.Builder b, java.util.Set<String> vmFlags) {
        int flags = b.getFlags() & ~(RemoteSyscalls.MAP_GROWSDOWN | RemoteSyscalls.MAP_NORESERVE);
        if (vmFlags.contains("gd")) {
            flags |= RemoteSyscalls.MAP_GROWSDOWN;
        }
        if (vmFlags.contains("nr")) {
            flags |= RemoteSyscalls.MAP_NORESERVE;
        }
        b.setFlags(flags).addAllVmFlags(vmFlags.stream().sorted().toList());
    }

    /** Areas a child can get from its parent by fork: private memory, and shared anonymous memory (the same object). */
    static boolean inheritable(VmaEntry e) {
        return e.getKind() == VmaKind.PRIVATE_ANON || e.getKind() == VmaKind.PRIVATE_FILE || e.getKind() == VmaKind.SHARED_ANON;
    }

    /** The parent has the very same area: same range, same kind of mapping of the same object. */
    static boolean sameArea(Vma parent, Vma child) {
        return parent.start() == child.start() && parent.end() == child.end() && parent.shared() == child.shared()
                && parent.inode() == child.inode() && parent.dev().equals(child.dev()) && parent.path().equals(child.path())
                && parent.offset() == child.offset();
    }

    /** The name a memfd was created with, from "/memfd:NAME (deleted)". */
    static String memfdName(String path) {
        String name = path.substring("/memfd:".length());
        return name.endsWith(" (deleted)") ? name.substring(0, name.length() - " (deleted)".length()) : name;
    }

    static boolean fileBacked(VmaEntry e) {
        return e.getKind() == VmaKind.PRIVATE_FILE || e.getKind() == VmaKind.SHARED_FILE;
    }

    static boolean special(VmaEntry e) {
        return switch (e.getKind()) {
            case VDSO, VVAR, VVAR_VCLOCK, VSYSCALL, SYSV_SHM -> true;
            default -> false;
        };
    }

    static String describe(VmaEntry e) {
        return Long.toHexString(e.getStart()) + "-" + Long.toHexString(e.getEnd()) + " " + e.getKind()
                + (e.getPath().isEmpty() ? "" : " " + e.getPath());
    }
}
