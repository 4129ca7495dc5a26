package dev.cryo.sys;

/** errno values Cryo meets, with their names as errno(3) prints them. */
public final class Errno {
    public static final int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9,
            ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16,
            EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOTTY = 25,
            ENOSPC = 28, ESPIPE = 29, EROFS = 30, EPIPE = 32, ERANGE = 34, ENOSYS = 38,
            ENODATA = 61, EOPNOTSUPP = 95, EADDRINUSE = 98, ENOTCONN = 107, ETIMEDOUT = 110;

    private static final String[] NAMES = new String[134];

    static {
        String[] list = {
            "1 EPERM Operation not permitted", "2 ENOENT No such file or directory", "3 ESRCH No such process",
            "4 EINTR Interrupted system call", "5 EIO I/O error", "6 ENXIO No such device or address",
            "7 E2BIG Argument list too long", "8 ENOEXEC Exec format error", "9 EBADF Bad file descriptor",
            "10 ECHILD No child processes", "11 EAGAIN Resource temporarily unavailable",
            "12 ENOMEM Cannot allocate memory", "13 EACCES Permission denied", "14 EFAULT Bad address",
            "16 EBUSY Device or resource busy", "17 EEXIST File exists", "18 EXDEV Invalid cross-device link",
            "19 ENODEV No such device", "20 ENOTDIR Not a directory", "21 EISDIR Is a directory",
            "22 EINVAL Invalid argument", "23 ENFILE Too many open files in system",
            "24 EMFILE Too many open files", "25 ENOTTY Inappropriate ioctl for device",
            "26 ETXTBSY Text file busy", "27 EFBIG File too large", "28 ENOSPC No space left on device",
            "29 ESPIPE Illegal seek", "30 EROFS Read-only file system", "32 EPIPE Broken pipe",
            "34 ERANGE Numerical result out of range", "36 ENAMETOOLONG File name too long",
            "38 ENOSYS Function not implemented", "39 ENOTEMPTY Directory not empty",
            "40 ELOOP Too many levels of symbolic links", "61 ENODATA No data available",
            "75 EOVERFLOW Value too large for defined data type", "95 EOPNOTSUPP Operation not supported",
            "97 EAFNOSUPPORT Address family not supported by protocol", "98 EADDRINUSE Address already in use",
            "99 EADDRNOTAVAIL Cannot assign requested address", "107 ENOTCONN Transport endpoint is not connected",
            "110 ETIMEDOUT Connection timed out", "133 EHWPOISON Memory page has hardware error"};
        for (String entry : list) {
            String[] parts = entry.split(" ", 3);
            NAMES[Integer.parseInt(parts[0])] = parts[1] + " " + parts[2];
        }
    }

    private Errno() {
    }

    /** The symbolic name, e.g. {@code ESRCH}, or {@code errno 42} for one not in the table. */
    public static String name(int errno) {
        String entry = errno > 0 && errno < NAMES.length ? NAMES[errno] : null;
        return entry == null ? "errno " + errno : entry.substring(0, entry.indexOf(' '));
    }

    /** The strerror(3) text. */
    public static String describe(int errno) {
        String entry = errno > 0 && errno < NAMES.length ? NAMES[errno] : null;
        return entry == null ? "unknown error" : entry.substring(entry.indexOf(' ') + 1);
    }
}
