"""Accelerator design: AutoDNNchip's last step, a design point written as synthesizable Verilog, simulated in
Icarus Verilog and synthesized with Yosys (``rtl.py``). (Issue 18, in progress: the SmartExchange accelerator and
its baselines, and AutoDNNchip's design search, come next.)"""

from .rtl import DesignPoint, emit, load_design, predict_cycles, predict_resources, simulate, synthesize

__all__ = ["DesignPoint", "emit", "load_design", "predict_cycles", "predict_resources", "simulate", "synthesize"]
