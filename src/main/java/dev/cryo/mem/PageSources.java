package dev.cryo.mem;

import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;

import java.util.ArrayList;
import java.util.List;

/**
 * Where each saved page of a process is to be read from at restore: its own image's page file,
 * or, for runs marked in_parent, the page file of whichever image up the chain of parents
 * holds it. Resolved before anything is loaded, so a chain that lacks a page fails up front.
 */
final class PageSources {
    private static final long PAGE = dev.cryo.proc.Pagemap.PAGE_SIZE;

    /** {@code length} bytes for {@code vaddr} at {@code offset} of page file {@code file}. */
    record Piece(long vaddr, long length, String file, long offset) {
    }

    private PageSources() {
    }

    /** The pieces of process {@code pid}, in address order. */
    static List<Piece> of(ImageReader image, int pid) {
        PagemapImage pagemap = image.read(ImageKind.PAGEMAP, pid, PagemapImage.parser());
        String file = image.path(ImageKind.PAGES, pid).toAbsolutePath().toString();
        List<Piece> all = new ArrayList<>();
        List<long[]> inParent = new ArrayList<>();
        List<long[]> early = new ArrayList<>();
        long offset = 0;
        for (PageRun run : pagemap.getRunsList()) {
            long length = run.getNrPages() * PAGE;
            if (run.getInParent()) {
                inParent.add(new long[] {run.getVaddr(), run.getVaddr() + length});
            } else if (run.getEarly()) {
                early.add(new long[] {run.getVaddr(), run.getVaddr() + length});
            } else {
                all.add(new Piece(run.getVaddr(), length, file, offset));
                offset += length;
            }
        }
        List<Piece> parentPieces = null;
        List<long[]> layerFromParent = new ArrayList<>();
        if (!early.isEmpty()) {
            // the early layer: its own pages in pages-early-PID.img in order, the rest in the parent
            String earlyFile = image.path(ImageKind.EARLY_PAGES, pid).toAbsolutePath().toString();
            List<Piece> layer = new ArrayList<>();
            long at = 0;
            for (PageRun run : image.read(ImageKind.EARLY_PAGEMAP, pid, PagemapImage.parser()).getRunsList()) {
                long length = run.getNrPages() * PAGE;
                if (run.getInParent()) {
                    layerFromParent.add(new long[] {run.getVaddr(), run.getVaddr() + length});
                } else {
                    layer.add(new Piece(run.getVaddr(), length, earlyFile, at));
                    at += length;
                }
            }
            if (!layerFromParent.isEmpty()) {
                parentPieces = parentPieces(image, pid);
                layer.addAll(lookUp(layerFromParent, parentPieces, image.dir() + ": the early layer of process " + pid
                        + " in the parent image"));
                layer.sort(java.util.Comparator.comparingLong(Piece::vaddr));
            }
            all.addAll(lookUp(early, layer, image.dir() + ": pages of process " + pid + " in its early layer"));
        }
        if (!inParent.isEmpty()) {
            if (parentPieces == null) {
                parentPieces = parentPieces(image, pid);
            }
            all.addAll(lookUp(inParent, parentPieces, image.dir() + ": pages of process " + pid + " in the parent image"));
        }
        all.sort(java.util.Comparator.comparingLong(Piece::vaddr));
        return all;
    }

    private static List<Piece> parentPieces(ImageReader image, int pid) {
        ImageReader parent = image.parent();
        if (parent == null || !parent.has(ImageKind.PAGEMAP, pid)) {
            throw new ImageException(image.dir() + ": pages of process " + pid + " are marked as in the parent image, but "
                    + (parent == null ? "no parent image is recorded" : parent.dir() + " holds none of that process"));
        }
        return of(parent, pid);
    }

    /** The pieces of {@code from} (address order) that hold each range of {@code wanted} (address order). */
    private static List<Piece> lookUp(List<long[]> wanted, List<Piece> from, String what) {
        List<Piece> out = new ArrayList<>();
        int j = 0;
        for (long[] w : wanted) {
            long at = w[0];
            while (j < from.size() && from.get(j).vaddr() + from.get(j).length() <= at) {
                j++;
            }
            int k = j;
            while (at < w[1]) {
                Piece p = k < from.size() ? from.get(k) : null;
                if (p == null || p.vaddr() > at) {
                    throw new ImageException(what + ": page 0x" + Long.toHexString(at) + " is not there");
                }
                long end = Math.min(w[1], p.vaddr() + p.length());
                out.add(new Piece(at, end - at, p.file(), p.offset() + (at - p.vaddr())));
                at = end;
                k++;
            }
        }
        return out;
    }
}
