"""What the benchmarks under scripts/ share; the product never imports it.

`methods` (the supernet training methods the rank-correlation benchmark compares), `baselines`
(HorNet, ConvNeXt and QuadraNet variants the block benchmarks time), `timing` (callables timed in
interleaved rounds), `standalone_pool` (stand-alone accuracies of many (arch, seed) pairs trained
in worker processes). Modules are imported by name: nothing is loaded until a script asks.
"""
