"""Estimating latency where it cannot be measured: the operator cost model (`model`) and the
reference networks (`reference_models`) behind the shipped estimated tables."""
