;; Z[m, q] += X[m, len] · Y[q, len]ᵀ with 128-bit SIMD: the kernel under the training executor's MatMul;
;; and Z[k, n] += X[m, k]ᵀ · Y[m, n] as a sum of outer products of rows, for the gradients of LoRA factors.
;; Assembled by `node tools/assemble_wasm.mjs` into DotProductsWasm.ts (the bytes the executor loads);
;; test/compute/lora/DotProductsWasm.test.ts checks that the two agree.
;;
;; Pointers are byte offsets into the exported memory. The caller pads: m to a multiple of 2, q to a
;; multiple of 4 and len to a multiple of 4 (zero rows and columns), so the loops have no edges; Z's
;; rows are `stride` floats apart and added to, so the caller copies Z in and out rather than adding in
;; JavaScript. A caller with many columns calls this a block of them at a time (Y and Z offset), so that
;; the block of Y stays in cache while every row of X passes it. Each
;; output is the dot product of two contiguous rows, summed in four float32 lanes over 2 x 4 tiles:
;; 8 accumulators and 3 operands, which fit the 16 vector registers of x86-64 and the 32 of ARM64.
(module
  (memory (export "memory") 1)

  ;; [Σw, Σx, Σy, Σz]: the lanes of four accumulators summed, by two rounds of pairing shuffles.
  (func $sums (param $w v128) (param $x v128) (param $y v128) (param $z v128) (result v128)
    (local $wx v128) (local $yz v128)
    ;; wx = [w0 + w2, x0 + x2, w1 + w3, x1 + x3]
    (local.set $wx (f32x4.add
      (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $w) (local.get $x))
      (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $w) (local.get $x))))
    (local.set $yz (f32x4.add
      (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $y) (local.get $z))
      (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $y) (local.get $z))))
    (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $wx) (local.get $yz))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $wx) (local.get $yz))))

  (func (export "dots") (param $x i32) (param $y i32) (param $z i32) (param $m i32) (param $q i32) (param $len i32)
    (param $stride i32)
    (local $row i32) (local $i i32) (local $j i32) (local $p i32) (local $out i32)
    (local $xa i32) (local $xb i32) (local $y0 i32) (local $y1 i32) (local $y2 i32) (local $y3 i32)
    (local $a v128) (local $b v128) (local $v v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128)
    (local.set $row (i32.shl (local.get $len) (i32.const 2)))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $xa (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $row))))
        (local.set $xb (i32.add (local.get $xa) (local.get $row)))
        (local.set $j (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $j) (local.get $q)))
            (local.set $y0 (i32.add (local.get $y) (i32.mul (local.get $j) (local.get $row))))
            (local.set $y1 (i32.add (local.get $y0) (local.get $row)))
            (local.set $y2 (i32.add (local.get $y1) (local.get $row)))
            (local.set $y3 (i32.add (local.get $y2) (local.get $row)))
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            (local.set $b0 (v128.const i32x4 0 0 0 0))
            (local.set $b1 (v128.const i32x4 0 0 0 0))
            (local.set $b2 (v128.const i32x4 0 0 0 0))
            (local.set $b3 (v128.const i32x4 0 0 0 0))
            (local.set $p (i32.const 0))
            (block $inner_done
              (loop $inner
                (br_if $inner_done (i32.ge_u (local.get $p) (local.get $row)))
                (local.set $a (v128.load (i32.add (local.get $xa) (local.get $p))))
                (local.set $b (v128.load (i32.add (local.get $xb) (local.get $p))))
                (local.set $v (v128.load (i32.add (local.get $y0) (local.get $p))))
                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $a) (local.get $v))))
                (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $b) (local.get $v))))
                (local.set $v (v128.load (i32.add (local.get $y1) (local.get $p))))
                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $a) (local.get $v))))
                (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $b) (local.get $v))))
                (local.set $v (v128.load (i32.add (local.get $y2) (local.get $p))))
                (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $a) (local.get $v))))
                (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $b) (local.get $v))))
                (local.set $v (v128.load (i32.add (local.get $y3) (local.get $p))))
                (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $a) (local.get $v))))
                (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $b) (local.get $v))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (br $inner)))
            (local.set $out (i32.add (local.get $z)
              (i32.shl (i32.add (i32.mul (local.get $i) (local.get $stride)) (local.get $j)) (i32.const 2))))
            (v128.store (local.get $out) (f32x4.add (v128.load (local.get $out))
              (call $sums (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3))))
            (local.set $out (i32.add (local.get $out) (i32.shl (local.get $stride) (i32.const 2))))
            (v128.store (local.get $out) (f32x4.add (v128.load (local.get $out))
              (call $sums (local.get $b0) (local.get $b1) (local.get $b2) (local.get $b3))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $cols)))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $rows))))

  ;; Z[k, n] += Σ_i X[i, :]ᵀ ⊗ Y[i, :] for X [m, k], Y [m, n]: for each row i and each p < k, the row
  ;; Z[p, :] gains X[i, p] · Y[i, :], four lanes at a time. n is a multiple of 4 (the caller pads Y and
  ;; Z); with k small (a LoRA rank), Z stays in cache while X and Y are read once, in order.
  (func (export "outer") (param $x i32) (param $y i32) (param $z i32) (param $m i32) (param $k i32) (param $n i32)
    (local $i i32) (local $p i32) (local $j i32) (local $rowBytes i32) (local $xi i32) (local $yi i32) (local $zp i32)
    (local $s v128)
    (local.set $rowBytes (i32.shl (local.get $n) (i32.const 2)))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $xi (i32.add (local.get $x) (i32.shl (i32.mul (local.get $i) (local.get $k)) (i32.const 2))))
        (local.set $yi (i32.add (local.get $y) (i32.mul (local.get $i) (local.get $rowBytes))))
        (local.set $p (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $p) (local.get $k)))
            (local.set $s (v128.load32_splat (i32.add (local.get $xi) (i32.shl (local.get $p) (i32.const 2)))))
            (local.set $zp (i32.add (local.get $z) (i32.mul (local.get $p) (local.get $rowBytes))))
            (local.set $j (i32.const 0))
            (block $axpy_done
              (loop $axpy
                (br_if $axpy_done (i32.ge_u (local.get $j) (local.get $rowBytes)))
                (v128.store (i32.add (local.get $zp) (local.get $j))
                  (f32x4.add (v128.load (i32.add (local.get $zp) (local.get $j)))
                    (f32x4.mul (local.get $s) (v128.load (i32.add (local.get $yi) (local.get $j))))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $axpy)))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $cols)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))
)
