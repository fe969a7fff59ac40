;; The training executor's transcendental kernels with 128-bit SIMD: exp (under softmax and the loss),
;; erf and its derivative, GELU (x Φ(x), with Φ from erf) and its derivative; and layer normalization
;; over rows, forward and backward (no transcendental, but three passes over each row that SIMD shortens). Assembled by `node tools/assemble_wasm.mjs` into
;; RowKernelsWasm.ts; test/compute/lora/RowKernels.test.ts holds them to the JavaScript functions.
;;
;; Pointers are byte offsets into the exported memory; counts and widths are multiples of 4 (the caller
;; pads). exp is Cephes' expf: e^x = 2^n e^r with n = round(x log2 e), r = x - n ln 2 (ln 2 in two
;; parts) and a degree-6 polynomial for e^r, relative error about 1e-7; below -87.3 (where float32's
;; normal range ends) it is 0, so the -3.4e38 of a masked attention score gives exactly 0. erf is
;; Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7 as the JavaScript erf's 1.2e-7.
(module
  (memory (export "memory") 1)

  (func $exp (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128) (local $low v128)
    (local.set $low (f32x4.lt (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $x (f32x4.min (f32x4.max (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3))
      (v128.const f32x4 88.3 88.3 88.3 88.3)))
    (local.set $n (f32x4.nearest
      (f32x4.mul (local.get $x) (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))))
    (local.set $r (f32x4.sub (local.get $x)
      (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))))
    (local.set $r (f32x4.sub (local.get $r)
      (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
    (local.set $p (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
    (local.set $p (f32x4.add
      (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r))) (local.get $r))
      (v128.const f32x4 1 1 1 1)))
    ;; 2^n: n + 127 in the exponent bits.
    (local.set $p (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127))
        (i32.const 23))))
    (v128.andnot (local.get $p) (local.get $low)))

  (func $erf (param $x v128) (result v128)
    (local $z v128) (local $t v128) (local $p v128) (local $y v128)
    (local.set $z (f32x4.abs (local.get $x)))
    (local.set $t (f32x4.div (v128.const f32x4 1 1 1 1)
      (f32x4.add (v128.const f32x4 1 1 1 1)
        (f32x4.mul (local.get $z) (v128.const f32x4 0.3275911 0.3275911 0.3275911 0.3275911)))))
    (local.set $p (v128.const f32x4 1.061405429 1.061405429 1.061405429 1.061405429))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t))
      (v128.const f32x4 -1.453152027 -1.453152027 -1.453152027 -1.453152027)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t))
      (v128.const f32x4 1.421413741 1.421413741 1.421413741 1.421413741)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t))
      (v128.const f32x4 -0.284496736 -0.284496736 -0.284496736 -0.284496736)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t))
      (v128.const f32x4 0.254829592 0.254829592 0.254829592 0.254829592)))
    (local.set $p (f32x4.mul (local.get $p) (local.get $t)))
    (local.set $y (f32x4.sub (v128.const f32x4 1 1 1 1)
      (f32x4.mul (local.get $p) (call $exp (f32x4.neg (f32x4.mul (local.get $z) (local.get $z)))))))
    ;; erf is odd: the sign bit of x on |erf|.
    (v128.or (local.get $y) (v128.and (local.get $x) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))))

  ;; dst[i] = e^src[i] for n floats.
  (func (export "exp") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (call $exp (v128.load (i32.add (local.get $src) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $each))))

  ;; dst[i] = erf(src[i]) for n floats.
  (func (export "erf") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (call $erf (v128.load (i32.add (local.get $src) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $each))))

  ;; dst[i] = g[i] · 2/√π · e^(-x[i]²), erf's vector-Jacobian product, for n floats.
  (func (export "erfGrad") (param $x i32) (param $g i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32) (local $v v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul
            (f32x4.mul (v128.load (i32.add (local.get $g) (local.get $i)))
              (v128.const f32x4 1.12837917 1.12837917 1.12837917 1.12837917))
            (call $exp (f32x4.neg (f32x4.mul (local.get $v) (local.get $v))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $each))))

  ;; Softmax of each of `rows` rows of `width` floats from src into dst (which may be src), and each
  ;; row's max and Σ e^(x - max) into stats[2 row], stats[2 row + 1] (the log-sum-exp is max + log Σ).
  (func (export "softmax") (param $src i32) (param $dst i32) (param $stats i32) (param $rows i32) (param $width i32)
    (local $row i32) (local $bytes i32) (local $from i32) (local $to i32) (local $i i32)
    (local $m v128) (local $s v128) (local $e v128) (local $max f32) (local $sum f32)
    (local.set $bytes (i32.shl (local.get $width) (i32.const 2)))
    (block $rows_done
      (loop $each_row
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $from (i32.add (local.get $src) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $to (i32.add (local.get $dst) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $m (v128.const f32x4 -inf -inf -inf -inf))
        (local.set $i (i32.const 0))
        (block $max_done
          (loop $max_loop
            (br_if $max_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $m (f32x4.max (local.get $m) (v128.load (i32.add (local.get $from) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $max_loop)))
        (local.set $max (f32.max
          (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
          (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m)))))
        (local.set $m (f32x4.splat (local.get $max)))
        (local.set $s (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $exp_done
          (loop $exp_loop
            (br_if $exp_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $e (call $exp (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $m))))
            (v128.store (i32.add (local.get $to) (local.get $i)) (local.get $e))
            (local.set $s (f32x4.add (local.get $s) (local.get $e)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $exp_loop)))
        (local.set $sum (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $s)) (f32x4.extract_lane 1 (local.get $s)))
          (f32.add (f32x4.extract_lane 2 (local.get $s)) (f32x4.extract_lane 3 (local.get $s)))))
        (f32.store (i32.add (local.get $stats) (i32.shl (local.get $row) (i32.const 3))) (local.get $max))
        (f32.store offset=4 (i32.add (local.get $stats) (i32.shl (local.get $row) (i32.const 3))) (local.get $sum))
        (local.set $s (f32x4.splat (f32.div (f32.const 1) (local.get $sum))))
        (local.set $i (i32.const 0))
        (block $scale_done
          (loop $scale_loop
            (br_if $scale_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (v128.store (i32.add (local.get $to) (local.get $i))
              (f32x4.mul (v128.load (i32.add (local.get $to) (local.get $i))) (local.get $s)))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $scale_loop)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $each_row))))

  ;; dst[i] = GELU(src[i]) = ½ x (1 + erf(x / √2)) for n floats.
  (func (export "gelu") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32) (local $x v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $x (v128.load (i32.add (local.get $src) (local.get $i))))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (f32x4.mul (local.get $x) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (f32x4.add (v128.const f32x4 1 1 1 1)
              (call $erf (f32x4.mul (local.get $x) (v128.const f32x4 0.70710678 0.70710678 0.70710678 0.70710678))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $each))))

  ;; dst[i] = g[i] · GELU'(x[i]) = g (½ (1 + erf(x / √2)) + x e^(-x²/2) / √(2π)) for n floats.
  (func (export "geluGrad") (param $x i32) (param $g i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32) (local $v v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (v128.load (i32.add (local.get $g) (local.get $i)))
            (f32x4.add
              (f32x4.mul (v128.const f32x4 0.5 0.5 0.5 0.5)
                (f32x4.add (v128.const f32x4 1 1 1 1)
                  (call $erf (f32x4.mul (local.get $v) (v128.const f32x4 0.70710678 0.70710678 0.70710678 0.70710678)))))
              (f32x4.mul (f32x4.mul (local.get $v) (v128.const f32x4 0.39894228 0.39894228 0.39894228 0.39894228))
                (call $exp (f32x4.mul (f32x4.mul (local.get $v) (local.get $v))
                  (v128.const f32x4 -0.5 -0.5 -0.5 -0.5)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $each))))

  (func $lanes (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; For each of `rows` rows of `width` floats: y = (x - mean) / √(variance + ε) · γ + β.
  (func (export "layerNorm")
    (param $src i32) (param $gamma i32) (param $beta i32) (param $dst i32)
    (param $rows i32) (param $width i32) (param $epsilon f32)
    (local $row i32) (local $bytes i32) (local $from i32) (local $to i32) (local $i i32)
    (local $acc v128) (local $d v128) (local $mean v128) (local $scale v128) (local $n f32) (local $r f32)
    (local.set $bytes (i32.shl (local.get $width) (i32.const 2)))
    (local.set $n (f32.convert_i32_u (local.get $width)))
    (block $rows_done
      (loop $each_row
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $from (i32.add (local.get $src) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $to (i32.add (local.get $dst) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $sum_done
          (loop $sum
            (br_if $sum_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $from) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $sum)))
        (local.set $mean (f32x4.splat (f32.div (call $lanes (local.get $acc)) (local.get $n))))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $var_done
          (loop $var
            (br_if $var_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $d (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $mean)))
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $var)))
        (local.set $r (f32.div (f32.const 1)
          (f32.sqrt (f32.add (f32.div (call $lanes (local.get $acc)) (local.get $n)) (local.get $epsilon)))))
        (local.set $scale (f32x4.splat (local.get $r)))
        (local.set $i (i32.const 0))
        (block $out_done
          (loop $out
            (br_if $out_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (v128.store (i32.add (local.get $to) (local.get $i))
              (f32x4.add
                (f32x4.mul
                  (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $mean))
                    (local.get $scale))
                  (v128.load (i32.add (local.get $gamma) (local.get $i))))
                (v128.load (i32.add (local.get $beta) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $out)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $each_row))))

  ;; dx of layer normalization for each row, from x, γ and dL/dy: with x̂ = (x - mean) · inv and
  ;; gs = g γ, dx = inv · (gs - mean(gs) - x̂ · mean(gs x̂)).
  (func (export "layerNormGrad")
    (param $src i32) (param $gamma i32) (param $g i32) (param $dst i32)
    (param $rows i32) (param $width i32) (param $epsilon f32)
    (local $row i32) (local $bytes i32) (local $from i32) (local $grad i32) (local $to i32) (local $i i32)
    (local $acc v128) (local $acc2 v128) (local $d v128) (local $xhat v128) (local $gs v128)
    (local $mean v128) (local $scale v128) (local $meanG v128) (local $meanGX v128) (local $n f32) (local $r f32)
    (local.set $bytes (i32.shl (local.get $width) (i32.const 2)))
    (local.set $n (f32.convert_i32_u (local.get $width)))
    (block $rows_done
      (loop $each_row
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $from (i32.add (local.get $src) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $grad (i32.add (local.get $g) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $to (i32.add (local.get $dst) (i32.mul (local.get $row) (local.get $bytes))))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $sum_done
          (loop $sum
            (br_if $sum_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $from) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $sum)))
        (local.set $mean (f32x4.splat (f32.div (call $lanes (local.get $acc)) (local.get $n))))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $var_done
          (loop $var
            (br_if $var_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $d (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $mean)))
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $var)))
        (local.set $r (f32.div (f32.const 1)
          (f32.sqrt (f32.add (f32.div (call $lanes (local.get $acc)) (local.get $n)) (local.get $epsilon)))))
        (local.set $scale (f32x4.splat (local.get $r)))
        ;; mean(gs) and mean(gs x̂)
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $acc2 (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $means_done
          (loop $means
            (br_if $means_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $xhat (f32x4.mul
              (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $mean)) (local.get $scale)))
            (local.set $gs (f32x4.mul (v128.load (i32.add (local.get $grad) (local.get $i)))
              (v128.load (i32.add (local.get $gamma) (local.get $i)))))
            (local.set $acc (f32x4.add (local.get $acc) (local.get $gs)))
            (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.mul (local.get $gs) (local.get $xhat))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $means)))
        (local.set $meanG (f32x4.splat (f32.div (call $lanes (local.get $acc)) (local.get $n))))
        (local.set $meanGX (f32x4.splat (f32.div (call $lanes (local.get $acc2)) (local.get $n))))
        (local.set $i (i32.const 0))
        (block $out_done
          (loop $out
            (br_if $out_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $xhat (f32x4.mul
              (f32x4.sub (v128.load (i32.add (local.get $from) (local.get $i))) (local.get $mean)) (local.get $scale)))
            (local.set $gs (f32x4.mul (v128.load (i32.add (local.get $grad) (local.get $i)))
              (v128.load (i32.add (local.get $gamma) (local.get $i)))))
            (v128.store (i32.add (local.get $to) (local.get $i))
              (f32x4.mul (local.get $scale)
                (f32x4.sub (f32x4.sub (local.get $gs) (local.get $meanG))
                  (f32x4.mul (local.get $xhat) (local.get $meanGX)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $out)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $each_row))))
)
