package dev.cryo.mem;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Sets of addresses as sorted, disjoint, non-touching {@code [start, end)} pairs: what the
 * incremental dump computes with (areas tracked since the parent, pages the parent holds, pages
 * written since).
 */
final class Ranges {
    private Ranges() {
    }

    /** Sorts and merges overlapping or touching ranges. */
    static List<long[]> normalize(List<long[]> in) {
        boolean ordered = true;
        for (int i = 1; i < in.size() && ordered; i++) {
            ordered = in.get(i - 1)[0] <= in.get(i)[0];
        }
        List<long[]> sorted = in;
        if (!ordered) { // the kernel's and the image's lists come ordered; only a mix needs sorting
            sorted = new ArrayList<>(in);
            sorted.sort(Comparator.comparingLong(r -> r[0]));
        }
        List<long[]> out = new ArrayList<>();
        for (long[] r : sorted) {
            if (r[1] <= r[0]) {
                continue;
            }
            if (!out.isEmpty() && out.getLast()[1] >= r[0]) {
                out.getLast()[1] = Math.max(out.getLast()[1], r[1]);
            } else {
                out.add(new long[] {r[0], r[1]});
            }
        }
        return out;
    }

    static List<long[]> intersect(List<long[]> a, List<long[]> b) {
        List<long[]> out = new ArrayList<>();
        int i = 0, j = 0;
        while (i < a.size() && j < b.size()) {
            long s = Math.max(a.get(i)[0], b.get(j)[0]);
            long e = Math.min(a.get(i)[1], b.get(j)[1]);
            if (s < e) {
                out.add(new long[] {s, e});
            }
            if (a.get(i)[1] < b.get(j)[1]) {
                i++;
            } else {
                j++;
            }
        }
        return out;
    }

    static List<long[]> subtract(List<long[]> a, List<long[]> b) {
        List<long[]> out = new ArrayList<>();
        int j = 0;
        for (long[] r : a) {
            long s = r[0];
            while (j < b.size() && b.get(j)[1] <= s) {
                j++;
            }
            int k = j;
            while (s < r[1]) {
                if (k >= b.size() || b.get(k)[0] >= r[1]) {
                    out.add(new long[] {s, r[1]});
                    break;
                }
                long[] cut = b.get(k);
                if (cut[0] > s) {
                    out.add(new long[] {s, cut[0]});
                }
                s = Math.max(s, cut[1]);
                k++;
            }
        }
        return out;
    }

    static long bytes(List<long[]> ranges) {
        return ranges.stream().mapToLong(r -> r[1] - r[0]).sum();
    }
}
