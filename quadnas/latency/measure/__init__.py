"""Measuring latency on real hardware: runtimes (`backends`), the profiler (`profile`, `settings`),
the kit for devices without quadnas (`kit`, and `kit_runner`, the standalone script copied into
kits), and end-to-end validation of a table (`validate`)."""
