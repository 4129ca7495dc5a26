package dev.cryo.container;

import dev.cryo.image.proto.LayerEntry;
import dev.cryo.image.proto.RootfsLayer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.assertj.core.api.Assertions.assertThat;

/** An overlay upper layer saved and put back elsewhere: files, modes, links, whiteouts, opaque directories. */
class RootfsLayersTest {
    @TempDir
    Path tmp;

    @Test
    void upperLayerRoundTrip() throws Exception {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "whiteouts and trusted xattrs need root");
        Path upper = tmp.resolve("upper");
        Files.createDirectories(upper.resolve("etc/app"));
        Files.writeString(upper.resolve("etc/app/conf"), "x=1\n");
        Files.setPosixFilePermissions(upper.resolve("etc/app/conf"), PosixFilePermissions.fromString("rw-------"));
        Files.createSymbolicLink(upper.resolve("link"), Path.of("etc/app/conf"));
        dev.cryo.sys.Sys.mknod(upper.resolve("etc/deleted").toString(), 0020000, 0);
        Files.createDirectories(upper.resolve("var/replaced"));
        dev.cryo.sys.Sys.lsetxattr(upper.resolve("var/replaced").toString(), "trusted.overlay.opaque", new byte[] {'y'});

        RootfsLayer layer = RootfsLayers.save(upper);
        assertThat(layer.getEntriesList()).extracting(LayerEntry::getPath)
                .contains("etc", "etc/app", "etc/app/conf", "etc/deleted", "link", "var/replaced");

        Path back = tmp.resolve("back");
        Files.createDirectories(back);
        RootfsLayers.restore(RootfsLayer.parseFrom(layer.toByteArray()), back);
        assertThat(Files.readString(back.resolve("etc/app/conf"))).isEqualTo("x=1\n");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(back.resolve("etc/app/conf")))).isEqualTo("rw-------");
        assertThat(Files.readSymbolicLink(back.resolve("link"))).isEqualTo(Path.of("etc/app/conf"));
        assertThat(Files.readAttributes(back.resolve("etc/deleted"), java.nio.file.attribute.BasicFileAttributes.class,
                LinkOption.NOFOLLOW_LINKS).isOther()).as("whiteout device").isTrue();
        assertThat(dev.cryo.sys.Sys.lgetxattr(back.resolve("var/replaced").toString(), "trusted.overlay.opaque"))
                .isEqualTo(new byte[] {'y'});
        assertThat(Files.getLastModifiedTime(back.resolve("etc/app/conf")))
                .isEqualTo(Files.getLastModifiedTime(upper.resolve("etc/app/conf")));
    }
}
