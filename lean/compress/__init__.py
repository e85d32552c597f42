"""Compression: quantization, power-of-two rounding, SmartExchange, deep k-means weight sharing."""
