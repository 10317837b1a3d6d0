"""Where alerts go. One interface (:class:`monitor.sinks.base.Sink`), one module per sink."""
