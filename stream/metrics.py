"""Prometheus metrics of a running pipeline at http://<metrics.host>:<metrics.port>/metrics.

Counts and gauges are read from the pipeline, its captures and sinks when scraped, so the
hot path counts nothing twice; the event latency histogram is observed as events go out.

    alpr_frames_read_total{camera}       frames read from the source
    alpr_frames_processed_total{camera}  frames through detect/track/read
    alpr_frames_dropped_total{camera}    live frames dropped because processing was behind
    alpr_detections_total{camera}        plate boxes detected (inside the camera's ROI)
    alpr_events_total{camera,type}       events published (type: plate | correction)
    alpr_rejected_reads_total{camera,reason}  OCR reads not voted: illegible | unsure
    alpr_reconnects_total{camera}        connection attempts after the first
    alpr_camera_streaming{camera}        1 while frames arrive, else 0
    alpr_queue_depth{camera}             frames waiting for the detector
    alpr_sink_events_total{sink,outcome} events per sink: delivered (confirmed by the other side) |
                                         failed | dropped | undelivered (unconfirmed at close)
    alpr_sink_pending{sink}              events a sink has taken and not settled: queued or unconfirmed
    alpr_event_latency_seconds           plate first read right -> event published (histogram)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from stream.pipeline import Pipeline

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)


class PipelineMetrics(Collector):
    """Serves `pipeline`'s metrics from `start()` until `close()`."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry()
        self.latency = Histogram("alpr_event_latency_seconds", "From the plate's first right read to its event",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)
        self._server = None

    def start(self, host: str, port: int) -> None:
        try:
            self._server, _ = start_http_server(port, host, registry=self.registry)
        except OSError as e:
            raise OSError(f"cannot serve metrics on {host}:{port}: {e.strerror or e} (set metrics.port)") from None

    def collect(self):
        p = self.pipeline

        def per_camera(family, value):
            for c in p.captures:
                family.add_metric([c.camera_id], value(c))
            return family

        yield per_camera(CounterMetricFamily("alpr_frames_read", "Frames read from the source", labels=["camera"]),
                         lambda c: c.read)
        yield per_camera(CounterMetricFamily("alpr_frames_processed", "Frames through the pipeline", labels=["camera"]),
                         lambda c: p.stats.processed[c.camera_id])
        yield per_camera(CounterMetricFamily("alpr_frames_dropped", "Live frames dropped while behind",
                                             labels=["camera"]), lambda c: c.dropped)
        yield per_camera(CounterMetricFamily("alpr_detections", "Plate boxes detected", labels=["camera"]),
                         lambda c: p.stats.detections[c.camera_id])
        yield per_camera(CounterMetricFamily("alpr_reconnects", "Connection attempts after the first",
                                             labels=["camera"]), lambda c: c.reconnects)
        yield per_camera(GaugeMetricFamily("alpr_camera_streaming", "1 while frames arrive", labels=["camera"]),
                         lambda c: int(c.state == "streaming"))
        yield per_camera(GaugeMetricFamily("alpr_queue_depth", "Frames waiting for the detector", labels=["camera"]),
                         lambda c: c.frames.qsize())
        events = CounterMetricFamily("alpr_events", "Events published", labels=["camera", "type"])
        for c in p.captures:
            for kind in ("plate", "correction"):
                events.add_metric([c.camera_id, kind], p.stats.events_by.get((c.camera_id, kind), 0))
        yield events
        rejected = CounterMetricFamily("alpr_rejected_reads", "OCR reads not voted, by reason", labels=["camera", "reason"])
        for c in p.captures:
            for reason in ("illegible", "unsure"):
                rejected.add_metric([c.camera_id, reason], p.stats.rejected.get((c.camera_id, reason), 0))
        yield rejected
        sinks = CounterMetricFamily("alpr_sink_events", "Events per sink and outcome", labels=["sink", "outcome"])
        for s in p.sinks:
            for outcome in ("delivered", "failed", "dropped", "undelivered"):
                sinks.add_metric([s.label, outcome], getattr(s, outcome))
        yield sinks
        # with a broker away, events pile up here, not in delivered
        pending = GaugeMetricFamily("alpr_sink_pending", "Events queued or awaiting confirmation", labels=["sink"])
        for s in p.sinks:
            pending.add_metric([s.label], s.pending)
        yield pending

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
