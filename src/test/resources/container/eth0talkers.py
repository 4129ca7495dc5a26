"""Two processes of a container with a veth uplink talking over its eth0 address (not 127.0.0.1):
the parent serves on ADDR:7000, the child connects to it and sends a numbered line every 20 ms,
checking each answer; the server appends "N ok PEER" to /out/tcp ("bad" on any gap). ADDR:7001
answers every connection with "pong", for the host to reach the container through the veth;
ADDR:7002 answers each line N of a connection from the host with 2N."""
import fcntl, os, socket, struct, sys, threading, time, traceback
sys.stderr = open("/out/errors", "a", buffering=1)  # the container's stdio is /dev/null
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ADDR = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", b"eth0"))[20:24])  # SIOCGIFADDR
probe.close()

def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, port))
    s.listen(4)
    return s

tcp, ping, echo = listener(7000), listener(7001), listener(7002)

def pong():
    while True:
        conn, _ = ping.accept()
        conn.sendall(b"pong\n")
        conn.close()

def double():
    while True:
        conn, _ = echo.accept()
        f = conn.makefile("rwb", buffering=0)
        for line in f:
            f.write(b"%d\n" % (int(line) * 2))

def serve():
    try:
        conn, peer = tcp.accept()
        f = conn.makefile("rwb", buffering=0)
        want = 1
        for line in f:
            n = int(line)
            with open("/out/tcp", "a") as o:
                o.write("%d %s %s\n" % (n, "ok" if n == want else "bad (wanted %d)" % want, peer[0]))
            want = n + 1
            f.write(b"%d\n" % (n * 2))
    except Exception:
        traceback.print_exc()
        raise

if os.fork() == 0:
    s = socket.create_connection((ADDR, 7000))
    f = s.makefile("rwb", buffering=0)
    n = 0
    while True:
        n += 1
        f.write(b"%d\n" % n)
        if int(f.readline()) != n * 2:
            open("/out/client-bad", "w").write(str(n))
        time.sleep(0.02)
else:
    threading.Thread(target=pong, daemon=True).start()
    threading.Thread(target=double, daemon=True).start()
    serve()
