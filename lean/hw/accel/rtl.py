"""Synthesizable Verilog for a design point, its test bench, and the tools that check it (AutoDNNchip's last step).

A design point (``DesignPoint``, read from a DESIGN.json) is an output-stationary systolic array of ``rows x cols``
multiply-accumulators, ``a_bits`` activations by ``w_bits`` weights into ``acc_bits`` sums, with its buffers:
``rows`` input banks (bank r holds the im2col rows m with m mod rows = r), ``cols`` weight banks (bank c holds the
weight columns n with n mod cols = c) and one output buffer. With ``pack_dsp`` two 8-bit columns share one
multiplier (``rtl/lean_pe.v``: two weights packed 18 bits apart in one 27-bit operand, as one DSP48E2 slice
computes two 8-bit products), so the resource model's "two 8-bit MACs per DSP" is what the hardware does.

``emit`` writes three files:

- ``lean_pe.v``: the processing element (a fixed template);
- ``lean_accel.v``: the array, its banks (one write port for the host, one registered read port each: block RAM)
  and the controller, written out for the design's sizes. For each output tile of ``rows x cols`` it clears the
  accumulators, feeds row r of the array with A[m][t - r] and column c with B[t - c][n] (skewed, so operands
  meet in the right PE) for ``K + rows + pe_cols + 2`` cycles, then drains the tile into the output buffer, one
  sum a cycle. The ``os-systolic-overlap`` template gives each PE shadow registers: a finished tile's sums are
  captured into them in one cycle and a drain engine empties them while the array computes the next tile
  (``_overlap_drain_and_controller``), for a flip-flop per sum bit;
- ``tb_lean_accel.v`` (with a layer): a test bench that loads the banks through the host port from
  ``load.hex``, starts the array, counts its cycles and writes every output to ``result.hex``.

``simulate`` runs a small conv layer (its im2col matrix product) in Icarus Verilog and compares every output
with NumPy's integer product; ``synthesize`` runs Yosys's ``synth_xilinx`` and reads its cell counts (LUTs, DSP
slices, block RAMs, flip-flops) for comparison with ``predict_resources``. Missing tools are one
``HardwareModelError`` naming the Debian package.
"""

import dataclasses
import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import HardwareModelError
from . import graph
from .graph import overlap_cycles, tile_cycles

VERILOG_DIR = Path(__file__).parent / "rtl"
TEMPLATE_NAMES = ("os-systolic", "os-systolic-overlap")


@dataclass(frozen=True)
class DesignPoint:
    """One accelerator to build: geometry, widths, DSP packing and buffer depths (words per bank)."""

    rows: int
    cols: int
    a_bits: int = 8
    w_bits: int = 8
    acc_bits: int = 32
    pack_dsp: bool = False
    input_words: int = 1024       # per input bank
    weight_words: int = 1024      # per weight bank
    output_words: int = 4096
    template: str = "os-systolic"
    clock_mhz: float = 200.0

    def __post_init__(self):
        for name in ("rows", "cols", "a_bits", "w_bits", "acc_bits", "input_words", "weight_words", "output_words"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HardwareModelError(f"design {name} must be a positive integer; got {value!r}")
        if self.template not in TEMPLATE_NAMES:
            raise HardwareModelError(f"unknown RTL template {self.template!r}; choose one of: "
                                     f"{', '.join(TEMPLATE_NAMES)}")
        if self.pack_dsp and (self.a_bits != 8 or self.w_bits != 8 or self.cols % 2):
            raise HardwareModelError("pack_dsp packs two 8-bit weights into one multiplier: it needs a_bits = "
                                     "w_bits = 8 and an even number of columns")
        if self.acc_bits < self.a_bits + self.w_bits:
            raise HardwareModelError(f"acc_bits ({self.acc_bits}) must hold a product ({self.a_bits + self.w_bits} "
                                     "bits)")

    @property
    def pe_cols(self) -> int:
        """Physical PE columns (two output columns per PE when packed)."""
        return self.cols // 2 if self.pack_dsp else self.cols

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_design(path_or_dict) -> DesignPoint:
    """A ``DesignPoint`` from a DESIGN.json file (its ``"design"`` table, or the file itself) or a dict."""
    if isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        path = Path(path_or_dict)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise HardwareModelError(f"no design file {path}") from None
        except (OSError, ValueError) as exc:
            raise HardwareModelError(f"{path} is not a readable JSON design: {exc}") from None
    data = data.get("design", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise HardwareModelError("a design is a JSON object with rows, cols, a_bits, w_bits, ...")
    fields = {f.name for f in dataclasses.fields(DesignPoint)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise HardwareModelError(f"unknown design fields: {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    missing = [k for k in ("rows", "cols") if k not in data]
    if missing:
        raise HardwareModelError(f"the design lacks {', '.join(missing)}")
    return DesignPoint(**data)


# ------------------------------------------------------------------------------------------ the model of it

def predict_cycles(design: DesignPoint, m: int, k: int, n: int) -> int:
    """Cycles of an ``(m x k) @ (k x n)`` product on the design: ``tile_cycles`` per output tile, and 1 to start
    (``os-systolic``), or the overlapped tiles' count (``graph.overlap_cycles``)."""
    tiles = math.ceil(m / design.rows) * math.ceil(n / design.cols)
    if design.template == "os-systolic-overlap":
        return int(overlap_cycles(tiles, k, design.rows, design.pe_cols, design.cols))
    return tiles * tile_cycles(k, design.rows, design.pe_cols, design.cols) + 1


def predict_resources(design: DesignPoint) -> dict:
    """DSP slices, BRAM18s, LUTs and flip-flops of one design point, as integers: the sum of its IPs' own models
    (the design's template in ``graph.TEMPLATES``; each IP's docstring says what it counts). The design search
    ranks with this model."""
    return {k: int(v) for k, v in graph.resources(graph.template_of(design), graph.fields(design)).items()}


# ------------------------------------------------------------------------------------------ Verilog

def _bits(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _host_port(d: DesignPoint) -> tuple:
    """Widths of the host write port: data word, bank select, address (the deeper bank's)."""
    return max(d.a_bits, d.w_bits), _bits(d.rows + d.cols), max(_bits(d.input_words), _bits(d.weight_words))


def _top(d: DesignPoint) -> str:
    """The Verilog of ``lean_accel`` for ``d``: banks, array, controller (see the module docstring)."""
    word, bb, addr = _host_port(d)
    banks = d.rows + d.cols
    lanes = 2 if d.pack_dsp else 1
    ab, wb, ob = _bits(d.input_words), _bits(d.weight_words), _bits(d.output_words)
    out = [f"""// lean_accel: written by lean.hw.accel.rtl for a {d.rows} x {d.cols} output-stationary array
// ({d.rows} x {d.pe_cols} PEs{', two 8-bit columns per multiplier' if d.pack_dsp else ''}), {d.a_bits}-bit activations,
// {d.w_bits}-bit weights, {d.acc_bits}-bit sums. Banks 0..{d.rows - 1}: im2col rows m = r (mod {d.rows});
// banks {d.rows}..{banks - 1}: weight columns n = c (mod {d.cols}); addresses tile * k_len + k.
module lean_accel (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    start,
    output reg                     done,
    output reg  [31:0]             cycles,
    input  wire [15:0]             m_len,
    input  wire [15:0]             n_len,
    input  wire [15:0]             k_len,
    input  wire                    host_we,
    input  wire [{bb - 1}:0]             host_bank,
    input  wire [{addr - 1}:0]            host_addr,
    input  wire [{word - 1}:0]            host_wdata,
    input  wire [{ob - 1}:0]            out_raddr,
    output reg  [{d.acc_bits - 1}:0]            out_rdata
);
    localparam ROWS = {d.rows}, COLS = {d.cols}, PE_COLS = {d.pe_cols}, LANES = {lanes};
    localparam IDLE = 3'd0, CLEAR = 3'd1, RUN = 3'd2, DRAIN = 3'd3, FINISH = 3'd4;
    reg [2:0] state;
    reg [15:0] t, tile_m, tile_n, m_tiles, n_tiles, row, col;
    reg [15:0] a_base, w_base;
    reg [31:0] out_row_base, tile_row_base;
    reg clear;
    wire [15:0] run_len = k_len + ROWS + PE_COLS + 1;
"""]
    overlap = d.template == "os-systolic-overlap"
    if overlap:
        out.append("""    // the drain engine's own tile (os-systolic-overlap): it empties the shadow registers
    // while the array computes the next tile
    localparam WAIT = 3'd5, FLUSH = 3'd6;
    reg capture, d_busy;
    reg [15:0] d_row, d_col, d_m, d_n, cap_m, cap_n;
    reg [31:0] d_row_base, cap_base;
    wire d_last = d_busy && (d_row == ROWS - 1) && (d_col == COLS - 1);
    wire hand_off = !d_busy || d_last;
""")
    # input banks
    for r in range(d.rows):
        out.append(f"""    // input bank {r}
    reg [{d.a_bits - 1}:0] a_mem{r} [0:{d.input_words - 1}];
    reg [{d.a_bits - 1}:0] a_q{r};
    reg a_ok{r};
    wire a_valid{r} = (state == RUN) && (t >= {r}) && (t - {r} < k_len);
    always @(posedge clk) begin
        if (host_we && host_bank == {r}) a_mem{r}[host_addr[{ab - 1}:0]] <= host_wdata[{d.a_bits - 1}:0];
        a_q{r} <= a_mem{r}[a_base + t - {r}];
        a_ok{r} <= a_valid{r};
    end
    wire signed [{d.a_bits - 1}:0] a_feed{r} = a_ok{r} ? a_q{r} : {d.a_bits}'d0;
""")
    for c in range(d.cols):
        q = c // lanes
        # a packed PE's second column past the layer's last one holds no weights: fed as zero (an unwritten bank
        # reads as undefined in simulation, and the packed product would carry it into the first column too)
        beyond = f" && (tile_n * COLS + {c} < n_len)" if lanes == 2 and c % 2 else ""
        out.append(f"""    // weight bank {d.rows + c} (column {c}, PE column {q})
    reg [{d.w_bits - 1}:0] w_mem{c} [0:{d.weight_words - 1}];
    reg [{d.w_bits - 1}:0] w_q{c};
    reg w_ok{c};
    wire w_valid{c} = (state == RUN) && (t >= {q}) && (t - {q} < k_len){beyond};
    always @(posedge clk) begin
        if (host_we && host_bank == {d.rows + c}) w_mem{c}[host_addr[{wb - 1}:0]] <= host_wdata[{d.w_bits - 1}:0];
        w_q{c} <= w_mem{c}[w_base + t - {q}];
        w_ok{c} <= w_valid{c};
    end
    wire signed [{d.w_bits - 1}:0] w_feed{c} = w_ok{c} ? w_q{c} : {d.w_bits}'d0;
""")
    # the array: PE (r, q) takes its activation from the left, its weights from above
    for r in range(d.rows):
        for q in range(d.pe_cols):
            a_src = f"a_feed{r}" if q == 0 else f"a_pass{r}_{q - 1}"
            w0 = f"w_feed{q * lanes}" if r == 0 else f"w0_pass{r - 1}_{q}"
            w1 = (f"w_feed{q * lanes + 1}" if r == 0 else f"w1_pass{r - 1}_{q}") if lanes == 2 else f"{d.w_bits}'d0"
            second = f"acc{r}_{q * lanes + 1}" if lanes == 2 else f"unused{r}_{q}"
            shadow2 = f"sh{r}_{q * lanes + 1}" if lanes == 2 else f"unused_sh{r}_{q}"
            out.append(f"""    wire signed [{d.a_bits - 1}:0] a_pass{r}_{q};
    wire signed [{d.w_bits - 1}:0] w0_pass{r}_{q}, w1_pass{r}_{q};
    wire signed [{d.acc_bits - 1}:0] acc{r}_{q * lanes}, {second}, sh{r}_{q * lanes}, {shadow2};
    lean_pe #(.A_BITS({d.a_bits}), .W_BITS({d.w_bits}), .ACC_BITS({d.acc_bits}), .PACK({int(d.pack_dsp)}),
              .SHADOW({int(overlap)})) pe{r}_{q} (
        .clk(clk), .clear(clear), .capture({"capture" if overlap else "1'b0"}), .a_in({a_src}), .w0_in({w0}),
        .w1_in({w1}), .a_out(a_pass{r}_{q}), .w0_out(w0_pass{r}_{q}), .w1_out(w1_pass{r}_{q}),
        .acc0(acc{r}_{q * lanes}), .acc1({second}), .sh0(sh{r}_{q * lanes}), .sh1({shadow2}));
""")
    if overlap:
        out.append(_overlap_drain_and_controller(d))
        return "".join(out)
    sums = ", ".join(f"acc{r}_{c}" for r in reversed(range(d.rows)) for c in reversed(range(d.cols)))
    out.append(f"""    // the drain: one sum a cycle into the output buffer
{_output_buffer(d, "acc", sums, "(state == DRAIN)", "row", "col", "tile_m", "tile_n", "out_row_base")}

    // the controller
    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE; done <= 1'b0; clear <= 1'b0; cycles <= 0;
        end else begin
            clear <= 1'b0;
            if (state != IDLE && state != FINISH) cycles <= cycles + 1;
            case (state)
{_START}
                RUN: if (t == run_len) begin
                    row <= 0; col <= 0; out_row_base <= tile_row_base; state <= DRAIN;
                end else t <= t + 1;
                DRAIN: if (col == COLS - 1) begin
                    col <= 0;
                    out_row_base <= out_row_base + n_len;
                    if (row == ROWS - 1) begin
{_next_tile("FINISH", 6)}
                    end else row <= row + 1;
                end else col <= col + 1;
                FINISH: begin done <= 1'b1; state <= IDLE; end
                default: state <= IDLE;
            endcase
        end
    end
endmodule
""")
    return "".join(out)


# the controller's first two states: on start, count the tiles and clear the accumulators; then run
_START = """                IDLE: if (start) begin
                    m_tiles <= (m_len + ROWS - 1) / ROWS; n_tiles <= (n_len + COLS - 1) / COLS;
                    tile_m <= 0; tile_n <= 0; a_base <= 0; w_base <= 0; tile_row_base <= 0;
                    done <= 1'b0; cycles <= 1; clear <= 1'b1; state <= CLEAR;
                end
                CLEAR: begin t <= 0; state <= RUN; end"""


def _output_buffer(d: DesignPoint, source, sums, active, row, col, tile_m, tile_n, base) -> str:
    """The output buffer and the multiplexer that drains sums into it, one a cycle: ``source`` names the
    registers drained (``sums``, flattened), ``active`` when, and the other names the drain's counters."""
    ob = _bits(d.output_words)
    return f"""    wire [{d.rows * d.cols * d.acc_bits - 1}:0] {source}_flat = {{{sums}}};
    wire [15:0] drain_index = {row} * COLS + {col};
    wire [{d.acc_bits - 1}:0] {source}_sel = {source}_flat[drain_index * {d.acc_bits} +: {d.acc_bits}];
    wire out_we = {active} && ({tile_m} * ROWS + {row} < m_len) && ({tile_n} * COLS + {col} < n_len);
    wire [31:0] out_waddr = {base} + {tile_n} * COLS + {col};
    reg [{d.acc_bits - 1}:0] out_mem [0:{d.output_words - 1}];
    always @(posedge clk) begin
        if (out_we) out_mem[out_waddr[{ob - 1}:0]] <= {source}_sel;
        out_rdata <= out_mem[out_raddr];
    end"""


def _next_tile(last: str, depth: int) -> str:
    """The controller's step to the next output tile (columns first), clearing the accumulators, or to state
    ``last`` after the last tile; indented ``depth`` levels of four spaces."""
    lines = ["if (tile_n + 1 == n_tiles) begin",
             "    tile_n <= 0; w_base <= 0;",
             f"    if (tile_m + 1 == m_tiles) state <= {last};",
             "    else begin",
             "        tile_m <= tile_m + 1; a_base <= a_base + k_len;",
             "        tile_row_base <= tile_row_base + ROWS * n_len;",
             "        clear <= 1'b1; state <= CLEAR;",
             "    end",
             "end else begin",
             "    tile_n <= tile_n + 1; w_base <= w_base + k_len; clear <= 1'b1; state <= CLEAR;",
             "end"]
    return "\n".join("    " * depth + line for line in lines)


def _overlap_drain_and_controller(d: DesignPoint) -> str:
    """os-systolic-overlap's drain engine and controller. When a tile's products are in, the controller hands it
    to the drain engine (a capture: the PEs copy their sums into the shadow registers) as soon as the engine is
    free or in its last cycle, clears the accumulators in the same cycle and starts the next tile; the engine
    writes the shadow sums to the output buffer, one a cycle, meanwhile. After the last tile it waits for the
    engine to finish."""
    sums = ", ".join(f"sh{r}_{c}" for r in reversed(range(d.rows)) for c in reversed(range(d.cols)))
    return f"""    // the drain engine: one shadow sum a cycle into the output buffer
{_output_buffer(d, "sh", sums, "d_busy", "d_row", "d_col", "d_m", "d_n", "d_row_base")}
    always @(posedge clk) begin
        if (rst) d_busy <= 1'b0;
        else if (capture) begin
            d_busy <= 1'b1; d_row <= 0; d_col <= 0; d_m <= cap_m; d_n <= cap_n; d_row_base <= cap_base;
        end else if (d_busy) begin
            if (d_col == COLS - 1) begin
                d_col <= 0; d_row_base <= d_row_base + n_len;
                if (d_row == ROWS - 1) d_busy <= 1'b0;
                else d_row <= d_row + 1;
            end else d_col <= d_col + 1;
        end
    end

    // the controller
    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE; done <= 1'b0; clear <= 1'b0; capture <= 1'b0; cycles <= 0;
        end else begin
            clear <= 1'b0;
            capture <= 1'b0;
            if (state != IDLE && state != FINISH) cycles <= cycles + 1;
            case (state)
{_START}
                RUN, WAIT: if (state == RUN && t != run_len) t <= t + 1;
                else if (!hand_off) state <= WAIT;
                else begin
                    capture <= 1'b1; cap_m <= tile_m; cap_n <= tile_n; cap_base <= tile_row_base;
{_next_tile("FLUSH", 5)}
                end
                FLUSH: if (!d_busy && !capture) state <= FINISH;
                FINISH: begin done <= 1'b1; state <= IDLE; end
                default: state <= IDLE;
            endcase
        end
    end
endmodule
"""


def _testbench(d: DesignPoint, m: int, k: int, n: int, loads: int) -> str:
    word, bb, addr = _host_port(d)
    load_bits = bb + addr + word
    ob = _bits(d.output_words)
    return f"""// tb_lean_accel: written by lean.hw.accel.rtl; loads the banks from load.hex, runs one
// ({m} x {k}) @ ({k} x {n}) product, writes the cycle count and every output to result.hex.
`timescale 1ns/1ps
module tb_lean_accel;
    reg clk = 1'b0, rst = 1'b1, start = 1'b0, host_we = 1'b0;
    reg [{bb - 1}:0] host_bank = 0;
    reg [{addr - 1}:0] host_addr = 0;
    reg [{word - 1}:0] host_wdata = 0;
    reg [{ob - 1}:0] out_raddr = 0;
    wire done;
    wire [31:0] cycles;
    wire [{d.acc_bits - 1}:0] out_rdata;
    reg [{load_bits - 1}:0] loads [0:{loads - 1}];
    integer i, f;
    always #2.5 clk = ~clk;
    lean_accel dut (.clk(clk), .rst(rst), .start(start), .done(done), .cycles(cycles), .m_len(16'd{m}),
                    .n_len(16'd{n}), .k_len(16'd{k}), .host_we(host_we), .host_bank(host_bank),
                    .host_addr(host_addr), .host_wdata(host_wdata), .out_raddr(out_raddr), .out_rdata(out_rdata));
    initial begin
        $readmemh("load.hex", loads);
        @(posedge clk); rst <= 1'b0;
        for (i = 0; i < {loads}; i = i + 1) begin
            @(posedge clk);
            host_we <= 1'b1;
            {{host_bank, host_addr, host_wdata}} <= loads[i];
        end
        @(posedge clk); host_we <= 1'b0; start <= 1'b1;
        @(posedge clk); start <= 1'b0;
        wait (done == 1'b1);
        f = $fopen("result.hex", "w");
        $fdisplay(f, "%0d", cycles);
        for (i = 0; i < {m * n}; i = i + 1) begin
            out_raddr <= i;
            @(posedge clk); @(posedge clk);
            $fdisplay(f, "%h", out_rdata);
        end
        $fclose(f);
        $finish;
    end
endmodule
"""


def emit(design: DesignPoint, out_dir, layer_data=None) -> list:
    """Write ``lean_pe.v`` and ``lean_accel.v`` (and, with ``layer_data`` = (A, B) integer matrices, the test
    bench and ``load.hex``) to ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "lean_pe.v", out / "lean_accel.v"]
    shutil.copyfile(VERILOG_DIR / "lean_pe.v", paths[0])
    paths[1].write_text(_top(design))
    (out / "DESIGN.json").write_text(json.dumps({"design": design.to_dict()}, indent=1) + "\n")
    paths.append(out / "DESIGN.json")
    if layer_data is not None:
        a, b = layer_data
        m, k = a.shape
        n = b.shape[1]
        _check_fits(design, m, k, n)
        lines = _load_lines(design, a, b)
        (out / "load.hex").write_text("\n".join(lines) + "\n")
        (out / "tb_lean_accel.v").write_text(_testbench(design, m, k, n, len(lines)))
        paths += [out / "load.hex", out / "tb_lean_accel.v"]
    return paths


def _check_fits(d: DesignPoint, m, k, n):
    needs = {"input_words": math.ceil(m / d.rows) * k, "weight_words": math.ceil(n / d.cols) * k,
             "output_words": m * n}
    for name, need in needs.items():
        if need > getattr(d, name):
            raise HardwareModelError(f"the layer needs {need} {name.replace('_', ' ')} per bank; the design has "
                                     f"{getattr(d, name)}")
    if max(m, n, k) >= 2 ** 16:
        raise HardwareModelError("the controller counts to 65,535: m, n and k must stay below it")


def _load_lines(d: DesignPoint, a, b):
    """``{bank, address, word}`` lines of hex for the test bench's host writes."""
    word, bb, addr = _host_port(d)
    digits = math.ceil((bb + addr + word) / 4)
    m, k = a.shape
    n = b.shape[1]
    lines = []

    def put(bank, address, value, bits):
        packed = (bank << (addr + word)) | (address << word) | (int(value) & ((1 << bits) - 1))
        lines.append(f"{packed:0{digits}x}")

    for i in range(m):
        for j in range(k):
            put(i % d.rows, (i // d.rows) * k + j, a[i, j], d.a_bits)
    for col in range(n):
        for j in range(k):
            put(d.rows + col % d.cols, (col // d.cols) * k + j, b[j, col], d.w_bits)
    return lines


# ------------------------------------------------------------------------------------------ the tools

def _tool(name, package):
    path = shutil.which(name)
    if path is None:
        raise HardwareModelError(f"{name} is not installed: apt-get install {package}")
    return path


def conv_as_matrices(c=3, k=4, h=6, w=6, r=3, seed=0, a_bits=8, w_bits=8):
    """A small conv layer with random integer inputs and weights, as the im2col product A (m x c*r*r) @ B
    (c*r*r x k) the array computes (stride 1, no padding)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1), (h, w, c))
    wt = rng.integers(-(2 ** (w_bits - 1)), 2 ** (w_bits - 1), (k, c, r, r))
    p, q = h - r + 1, w - r + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (r, r), axis=(0, 1))   # (p, q, c, r, r)
    a = windows.reshape(p * q, c * r * r).astype(np.int64)
    b = wt.reshape(k, c * r * r).T.astype(np.int64)
    return a, b


def simulate(design: DesignPoint, out_dir, a=None, b=None) -> dict:
    """Run ``a @ b`` (a small conv layer's im2col product by default) on the design in Icarus Verilog and
    compare every output with NumPy's integer product.

    Returns
    -------
    dict
        ``outputs``, ``mismatches``, ``cycles`` (simulated), ``predicted_cycles`` and their ``cycle_error``.
    """
    iverilog, vvp = _tool("iverilog", "iverilog"), _tool("vvp", "iverilog")
    if a is None:
        a, b = conv_as_matrices(a_bits=design.a_bits, w_bits=design.w_bits)
    out = Path(out_dir)
    emit(design, out, (a, b))
    sources = ["tb_lean_accel.v", "lean_accel.v", "lean_pe.v"]
    build = subprocess.run([iverilog, "-g2005", "-o", "sim.vvp", *sources], cwd=out, capture_output=True,
                           text=True)
    if build.returncode != 0:
        raise HardwareModelError(f"iverilog could not compile the design: {build.stderr.strip()[:400]}")
    run = subprocess.run([vvp, "-n", "sim.vvp"], cwd=out, capture_output=True, text=True, timeout=600)
    if run.returncode != 0 or not (out / "result.hex").exists():
        raise HardwareModelError(f"the simulation failed: {(run.stderr or run.stdout).strip()[:400]}")
    lines = (out / "result.hex").read_text().split()
    cycles = int(lines[0])
    raw = np.array([int(v, 16) for v in lines[1:]], dtype=np.int64)
    got = np.where(raw >= 2 ** (design.acc_bits - 1), raw - 2 ** design.acc_bits, raw)
    expected = (a @ b).reshape(-1)
    m, k = a.shape
    n = b.shape[1]
    predicted = predict_cycles(design, m, k, n)
    return {"m": m, "k": k, "n": n, "outputs": int(expected.size),
            "mismatches": int(np.count_nonzero(got != expected)), "cycles": cycles, "predicted_cycles": predicted,
            "cycle_error": (predicted - cycles) / cycles}


def synthesize(design: DesignPoint, out_dir, family: str = "xcup") -> dict:
    """Synthesize the design with Yosys (``synth_xilinx -family FAMILY``: ``xcup`` UltraScale+, as Ultra96's
    ZU3EG; ``xc7`` 7-series, as ZC706's Z-7045) and count its cells next to ``predict_resources``.

    Returns
    -------
    dict
        ``yosys`` (lut, dsp, bram18, ff: BRAM36 counted as two BRAM18), ``predicted``, ``cells`` (every cell type).
    """
    yosys = _tool("yosys", "yosys")
    out = Path(out_dir)
    emit(design, out)
    script = (f"read_verilog lean_pe.v lean_accel.v; synth_xilinx -family {family} -top lean_accel; "
              "tee -o stat.txt stat")
    run = subprocess.run([yosys, "-q", "-p", script], cwd=out, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise HardwareModelError(f"yosys failed: {(run.stderr or run.stdout).strip()[-400:]}")
    cells = {}
    text = (out / "stat.txt").read_text()
    if "=== design hierarchy ===" in text:        # the totals of the whole design, after each module's own
        text = text.split("=== design hierarchy ===", 1)[1]
    for line in text.splitlines():
        found = re.match(r"\s+(\w+)\s+(\d+)$", line)
        if found and not found.group(1).startswith("Number"):
            cells[found.group(1)] = cells.get(found.group(1), 0) + int(found.group(2))
    counts = {"lut": sum(v for c, v in cells.items() if re.fullmatch(r"LUT[1-6]", c)),
              "dsp": sum(v for c, v in cells.items() if c.startswith("DSP48")),
              "bram18": sum(v for c, v in cells.items() if c.startswith("RAMB18"))
              + 2 * sum(v for c, v in cells.items() if c.startswith("RAMB36")),
              "ff": sum(v for c, v in cells.items() if re.fullmatch(r"FD\w*", c)),
              "lutram": sum(v for c, v in cells.items() if c.startswith("RAM") and not c.startswith("RAMB"))}
    return {"family": family, "yosys": counts, "predicted": predict_resources(design), "cells": cells}
