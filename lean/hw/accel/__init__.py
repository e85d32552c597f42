"""Accelerator design: the SmartExchange accelerator against its baselines (``compare.py``); AutoDNNchip's graph of
IPs and its two predictor modes (``graph.py``), its two-stage design search (``explore.py``), and a design point
written as synthesizable Verilog, simulated in Icarus Verilog and synthesized with Yosys (``rtl.py``)."""

from .rtl import DesignPoint, emit, load_design, predict_cycles, predict_resources, simulate, synthesize

__all__ = ["DesignPoint", "emit", "load_design", "predict_cycles", "predict_resources", "simulate", "synthesize"]
