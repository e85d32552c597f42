"""Numba kernels and their validating wrappers: pure functions on arrays, no state, no I/O.

Activations are channels-last ``(n, h, w, c)``; weights are ``(k, c // groups, r, s)``.
"""

from ._config import configure, ensure_configured, get_threads, keep_freed_memory, set_threads
from .batchnorm import batchnorm_backward, batchnorm_forward_eval, batchnorm_forward_train, batchnorm_method
from .bf16 import BF16_AVAILABLE
from .conv import conv2d_backward, conv2d_forward, conv2d_method, conv_output_size
from .crossbar import crossbar_matmul
from .elementwise import add_relu, fake_quantize, relu, relu_backward
from .intconv import auto_int8_method, int4_conv2d, int8_conv2d, int8_matmul, pack_int4, unpack_int4
from .kmeans import kmeans_assign, kmeans_update, segment_sum
from .madd import MADD_AVAILABLE
from .pool import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .pow2 import code_table, encode_pow2, pow2_csr_matmul, pow2_csr_matmul_fixed, se_rebuild
from .psg import fixed_point, msb_predictor, sign_select, stochastic_round, symmetric_step
from .simd import SIMD_WIDTH
from .vnni import VNNI_AVAILABLE

__all__ = [
    "SIMD_WIDTH", "configure", "ensure_configured", "get_threads", "keep_freed_memory", "set_threads", "VNNI_AVAILABLE",
    "MADD_AVAILABLE", "BF16_AVAILABLE",
    "add_relu", "fake_quantize", "relu", "relu_backward", "kmeans_assign", "kmeans_update", "segment_sum",
    "batchnorm_backward", "batchnorm_forward_eval", "batchnorm_forward_train", "batchnorm_method",
    "conv2d_backward", "conv2d_forward", "conv2d_method", "conv_output_size", "crossbar_matmul",
    "auto_int8_method", "int4_conv2d", "int8_conv2d", "int8_matmul", "pack_int4", "unpack_int4",
    "code_table", "encode_pow2", "pow2_csr_matmul", "pow2_csr_matmul_fixed", "se_rebuild",
    "avgpool_backward", "avgpool_forward", "maxpool_backward", "maxpool_forward",
    "fixed_point", "msb_predictor", "sign_select", "stochastic_round", "symmetric_step",
]
