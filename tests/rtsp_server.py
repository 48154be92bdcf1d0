"""Serve an H.264 mp4 over RTSP on 127.0.0.1, for the capture's reconnect tests.

    /usr/bin/python3 tests/rtsp_server.py FILE PORT [MOUNT]

Run it with Debian's Python, not the venv: GStreamer's RTSP server comes as Debian packages
(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,bad}). Each client
gets its own pipeline from the start of the file (unshared media), paced to the file's clock,
at rtsp://127.0.0.1:PORT/MOUNT (default mount "x"). Prints "ready" once listening. Killing
it (or SIGSTOP) is a real outage (or stall) for the client.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    path, port = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) > 3 else "x"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # config-interval=-1: SPS/PPS with every keyframe, so a client joining late can decode
    factory.set_launch(f"( filesrc location=\"{path}\" ! qtdemux ! h264parse config-interval=-1 "
                       f"! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
