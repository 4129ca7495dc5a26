package dev.cryo.image;

/**
 * The catalogue of image files: name pattern, the 16-bit kind code written in each file's header,
 * and whether the file is a protobuf message or raw pages.
 */
public enum ImageKind {
    INVENTORY("inventory.img", 1, false),
    CORE("core-%d.img", 2, false),
    MM("mm-%d.img", 3, false),
    PAGEMAP("pagemap-%d.img", 4, false),
    PAGES("pages-%d.img", 5, true),
    FILES("files-%d.img", 6, false),
    SIGNALS("signals-%d.img", 7, false),
    TIMERS("timers-%d.img", 8, false),
    PSTREE("pstree.img", 9, false),
    PIPES("pipes.img", 10, false),
    UNIX("unix.img", 11, false),
    TRACKER("tracker.img", 12, false),
    EARLY_PAGES("pages-early-%d.img", 13, true),
    CONTAINER("container.img", 14, false),
    ROOTFS_UPPER("rootfs-upper.img", 15, false),
    PTYS("ptys.img", 16, false),
    EARLY_PAGEMAP("pagemap-early-%d.img", 17, false),
    SEM_UNDO("semundo-%d.img", 21, false),
    SECCOMP("seccomp-%d.img", 30, false),
    CGROUPS("cgroup-%d.img", 33, false);

    private final String pattern;
    private final int code;
    private final boolean raw;

    ImageKind(String pattern, int code, boolean raw) {
        this.pattern = pattern;
        this.code = code;
        this.raw = raw;
    }

    public String fileName(int pid) {
        return pattern.contains("%d") ? pattern.formatted(pid) : pattern;
    }

    public int code() {
        return code;
    }

    /** Raw page data, no header: it must stay page-aligned so a task can read it straight in. */
    public boolean raw() {
        return raw;
    }

    public static ImageKind byCode(int code) {
        for (ImageKind k : values()) {
            if (k.code == code) {
                return k;
            }
        }
        return null;
    }
}
