"""Draws docs/performance.png from the JSON bench/run writes: for each size and file system, the
checkpoint (Cryo's total and wall time against dd) and the restore (Cryo's in-JVM and wall time
against the fill baseline). bench/run calls it only when matplotlib is installed.
usage: python3 bench/chart.py RESULTS.json OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, out):
    with open(src) as f:
        data = json.load(f)
    rows = data["results"]
    labels = ["%d MiB\n%s" % (r["size_mib"], r["fs"]) for r in rows]
    med = [r["median"] for r in rows]
    xs = list(range(len(rows)))
    width = 0.27
    fig, (ck, rs) = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (
        (ck, "Checkpoint (kill after dump)", [("dd", "dd conv=fdatasync (baseline)"),
                                              ("total", "Cryo total (in JVM)"),
                                              ("wall", "Cryo wall (JVM start incl.)")]),
        (rs, "Restore until the task runs", [("fill", "fill fresh memory (baseline)"),
                                             ("restore", "Cryo (in JVM)"),
                                             ("restore_wall", "Cryo wall (JVM start incl.)")]),
    )
    for ax, title, series in panels:
        for i, (key, name) in enumerate(series):
            ax.bar([x + (i - 1) * width for x in xs], [m[key] / 1000.0 for m in med], width, label=name)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_ylabel("seconds (median of %d runs)" % data["runs"])
        ax.set_title(title)
        ax.legend(fontsize="small")
    fig.suptitle("Cryo %s, kernel %s, %d CPUs" % (data["cryo_commit"], data["kernel"], data["cpus"]))
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
