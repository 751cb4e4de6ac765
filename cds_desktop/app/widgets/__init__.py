"""The editor's widgets. They talk to DocumentState / EditWorker, never to the engine."""
