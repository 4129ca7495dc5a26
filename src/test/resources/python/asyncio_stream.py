"""An asyncio program: an epoll event loop, its socketpair self-pipe, a socketpair stream
between a producer and a consumer coroutine, and timers. The consumer checks every sequence
number (gaps or repeats go to OUT.bad) and writes its progress to OUT every 20 lines."""
import asyncio, socket, sys
OUT = sys.argv[1]
async def main():
    a, b = socket.socketpair()
    r, w = await asyncio.open_connection(sock=a)
    r2, w2 = await asyncio.open_connection(sock=b)
    seq = 0
    async def producer():
        nonlocal seq
        n = 0
        while True:
            w.write(b"%d\n" % n); await w.drain(); n += 1
            await asyncio.sleep(0.01)
    asyncio.ensure_future(producer())
    expect = 0
    while True:
        line = await r2.readline()
        v = int(line)
        if v != expect:
            with open(OUT + ".bad", "a") as f: f.write("expected %d got %d\n" % (expect, v))
        expect = v + 1
        if v % 20 == 0:
            with open(OUT, "w") as f: f.write("%d\n" % v)
asyncio.run(main())
