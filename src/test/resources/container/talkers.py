"""Two processes talking inside a container: the parent serves on TCP 127.0.0.1:7000 and on the
unix socket /out/talk.sock, the child connects to both and sends a numbered line every 20 ms on
each. The server checks each stream counts 1, 2, 3 ... and appends what it got to /out/tcp and
/out/unix, and answers each line, which the child checks in turn ("bad" lines on any gap)."""
import os, socket, sys, threading, time, traceback
sys.stderr = open("/out/errors", "a", buffering=1)  # the container's stdio is /dev/null
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", 7000))
tcp.listen(4)
if os.path.exists("/out/talk.sock"):
    os.unlink("/out/talk.sock")
unix = socket.socket(socket.AF_UNIX)
unix.bind("/out/talk.sock")
unix.listen(4)

def serve(listener, out):
    try:
        serve_one(listener, out)
    except Exception:
        traceback.print_exc()
        raise

def serve_one(listener, out):
    conn, _ = listener.accept()
    f = conn.makefile("rwb", buffering=0)
    want = 1
    for line in f:
        n = int(line)
        with open(out, "a") as o:
            o.write("%d %s\n" % (n, "ok" if n == want else "bad (wanted %d)" % want))
        want = n + 1
        f.write(b"%d\n" % (n * 2))

if os.fork() == 0:
    links = []
    for family, address in ((socket.AF_INET, ("127.0.0.1", 7000)), (socket.AF_UNIX, "/out/talk.sock")):
        s = socket.socket(family)
        s.connect(address)
        links.append(s.makefile("rwb", buffering=0))
    n = 0
    while True:
        n += 1
        for f in links:
            f.write(b"%d\n" % n)
            if int(f.readline()) != n * 2:
                open("/out/client-bad", "w").write(str(n))
        time.sleep(0.02)
else:
    threading.Thread(target=serve, args=(unix, "/out/unix"), daemon=True).start()
    serve(tcp, "/out/tcp")
