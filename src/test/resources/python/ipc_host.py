"""Uses the host's SysV shared memory (key argv[2]) and a POSIX message queue (name argv[3]):
every 50 ms it writes a counter into the segment and sends it through the queue, receives it
back, and writes "segment-value queue-value" to argv[1]. Both must still be connected after a
restore with --ipc-host for the two values to agree and keep rising."""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
out, key, name = sys.argv[1], int(sys.argv[2], 0), sys.argv[3].encode()
sid = libc.shmget(key, 1 << 16, 0o1600)
addr = libc.shmat(sid, None, 0)
cell = ctypes.c_long.from_address(addr)
mq = libc.mq_open(name, os.O_CREAT | os.O_RDWR | os.O_NONBLOCK, 0o600, None)
if sid < 0 or mq < 0:
    sys.exit("ipc setup failed: %d" % ctypes.get_errno())
i = 0
while True:
    i += 1
    cell.value = i
    libc.mq_send(mq, str(i).encode(), len(str(i)), 0)
    msg = ctypes.create_string_buffer(8192)
    n = libc.mq_receive(mq, msg, 8192, None)
    with open(out + ".tmp", "w") as f:
        f.write("%d %s\n" % (cell.value, msg.value[:n].decode()))
    os.replace(out + ".tmp", out)
    time.sleep(0.05)
