// lean_pe: one processing element of lean's output-stationary systolic array (lean/hw/accel/rtl.py writes the
// array and its controller around it).
//
// Each cycle the PE multiplies the activation passing right (a_in) by the weight passing down (w0_in), adds the
// product to its accumulator, and hands both operands on, one register later, to its neighbours. With PACK = 1
// it serves two output columns with one multiplier: the two 8-bit weights travel together and are packed 18 bits
// apart into one 27-bit operand, (w0 << 18) + w1, so one 27 x 8 product holds both a*w0 (bits 35..18) and a*w1
// (bits 17..0): the way two 8-bit MACs share one DSP48E2 slice. The low product is signed, so the high one is
// corrected by its sign bit. With SHADOW = 1 (the os-systolic-overlap template) a capture copies the finished
// sums into shadow registers, so the array can start the next tile while the controller drains these.
module lean_pe #(
    parameter A_BITS = 8,
    parameter W_BITS = 8,
    parameter ACC_BITS = 32,
    parameter PACK = 0,
    parameter SHADOW = 0
) (
    input  wire                       clk,
    input  wire                       clear,
    input  wire                       capture,
    input  wire signed [A_BITS-1:0]   a_in,
    input  wire signed [W_BITS-1:0]   w0_in,
    input  wire signed [W_BITS-1:0]   w1_in,
    output reg  signed [A_BITS-1:0]   a_out,
    output reg  signed [W_BITS-1:0]   w0_out,
    output reg  signed [W_BITS-1:0]   w1_out,
    output reg  signed [ACC_BITS-1:0] acc0,
    output reg  signed [ACC_BITS-1:0] acc1,
    output reg  signed [ACC_BITS-1:0] sh0,
    output reg  signed [ACC_BITS-1:0] sh1
);
    wire signed [ACC_BITS-1:0] p0;
    wire signed [ACC_BITS-1:0] p1;
    generate
        if (PACK) begin : packed_pair
            wire signed [26:0] w_packed = {w0_in[W_BITS-1], w0_in, 18'b0} + {{(27 - W_BITS){w1_in[W_BITS-1]}}, w1_in};
            wire signed [35:0] product = w_packed * a_in;
            wire signed [17:0] low = product[17:0];
            wire signed [17:0] high = product[35:18] + {17'b0, product[17]};
            assign p0 = high;
            assign p1 = low;
        end else begin : single
            wire signed [A_BITS+W_BITS-1:0] product = a_in * w0_in;
            assign p0 = product;
            assign p1 = 0;
        end
    endgenerate

    always @(posedge clk) begin
        if (clear) begin
            acc0 <= 0;
            acc1 <= 0;
        end else begin
            acc0 <= acc0 + p0;
            acc1 <= acc1 + p1;
        end
        a_out <= a_in;
        w0_out <= w0_in;
        w1_out <= w1_in;
    end

    generate
        if (SHADOW) begin : shadow
            always @(posedge clk) begin
                if (capture) begin
                    sh0 <= acc0;
                    sh1 <= acc1;
                end
            end
        end else begin : no_shadow
            always @(*) begin
                sh0 = 0;
                sh1 = 0;
            end
        end
    endgenerate
endmodule
