;; The vector MicroLoRA kernels (MicroLora.ts) with 128-bit SIMD: y = x + scale · (x Aᵀ) Bᵀ over a batch
;; of rows of width d, and its backward pass. Assembled by `node tools/assemble_wasm.mjs` into
;; MicroLoraWasm.ts; test/compute/lora/MicroLoRA.test.ts checks the two agree and that both paths match.
;;
;; Pointers are byte offsets into the exported memory; the caller lays the operands out there. A is
;; [rank, d] and B is given transposed, Bᵀ [rank, d] (so both factors are read along d, four lanes at a
;; time); gradA and gradBᵀ are laid out the same way and added to. The caller pads: d to a multiple of 8
;; and rank to a multiple of 2 (zero rows of A and Bᵀ contribute nothing and get zero gradients). `hs`
;; and `gs` are rank floats of scratch for one row's low-rank activations and their gradients.
(module
  (memory (export "memory") 1)

  (func $sum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; y[b] = x[b] + Σ_r hs[r] Bᵀ[r] with hs[r] = scale · x[b] · A[r], for each of `batch` rows.
  (func (export "forward")
    (param $x i32) (param $a i32) (param $bt i32) (param $y i32) (param $hs i32)
    (param $batch i32) (param $d i32) (param $rank i32) (param $scale f32)
    (local $rowBytes i32) (local $row i32) (local $xr i32) (local $yr i32)
    (local $r i32) (local $a0 i32) (local $a1 i32) (local $i i32) (local $plane i32)
    (local $v v128) (local $w v128) (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128)
    (local.set $rowBytes (i32.shl (local.get $d) (i32.const 2)))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $batch)))
        (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $row) (local.get $rowBytes))))
        (local.set $yr (i32.add (local.get $y) (i32.mul (local.get $row) (local.get $rowBytes))))
        ;; hs: two ranks at a time, each over two interleaved halves of the row (four sums in flight).
        (local.set $r (i32.const 0))
        (block $ranks_done
          (loop $ranks
            (br_if $ranks_done (i32.ge_u (local.get $r) (local.get $rank)))
            (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $rowBytes))))
            (local.set $a1 (i32.add (local.get $a0) (local.get $rowBytes)))
            (local.set $c0 (v128.const i32x4 0 0 0 0))
            (local.set $c1 (v128.const i32x4 0 0 0 0))
            (local.set $c2 (v128.const i32x4 0 0 0 0))
            (local.set $c3 (v128.const i32x4 0 0 0 0))
            (local.set $i (i32.const 0))
            (block $dot_done
              (loop $dot
                (br_if $dot_done (i32.ge_u (local.get $i) (local.get $rowBytes)))
                (local.set $v (v128.load (i32.add (local.get $xr) (local.get $i))))
                (local.set $w (v128.load offset=16 (i32.add (local.get $xr) (local.get $i))))
                (local.set $c0 (f32x4.add (local.get $c0)
                  (f32x4.mul (local.get $v) (v128.load (i32.add (local.get $a0) (local.get $i))))))
                (local.set $c1 (f32x4.add (local.get $c1)
                  (f32x4.mul (local.get $w) (v128.load offset=16 (i32.add (local.get $a0) (local.get $i))))))
                (local.set $c2 (f32x4.add (local.get $c2)
                  (f32x4.mul (local.get $v) (v128.load (i32.add (local.get $a1) (local.get $i))))))
                (local.set $c3 (f32x4.add (local.get $c3)
                  (f32x4.mul (local.get $w) (v128.load offset=16 (i32.add (local.get $a1) (local.get $i))))))
                (local.set $i (i32.add (local.get $i) (i32.const 32)))
                (br $dot)))
            (f32.store (i32.add (local.get $hs) (i32.shl (local.get $r) (i32.const 2)))
              (f32.mul (local.get $scale) (call $sum (f32x4.add (local.get $c0) (local.get $c1)))))
            (f32.store offset=4 (i32.add (local.get $hs) (i32.shl (local.get $r) (i32.const 2)))
              (f32.mul (local.get $scale) (call $sum (f32x4.add (local.get $c2) (local.get $c3)))))
            (local.set $r (i32.add (local.get $r) (i32.const 2)))
            (br $ranks)))
        ;; y = x + Σ_r hs[r] Bᵀ[r], four lanes at a time.
        (local.set $i (i32.const 0))
        (block $out_done
          (loop $out
            (br_if $out_done (i32.ge_u (local.get $i) (local.get $rowBytes)))
            (local.set $v (v128.load (i32.add (local.get $xr) (local.get $i))))
            (local.set $plane (i32.add (local.get $bt) (local.get $i)))
            (local.set $r (i32.const 0))
            (block $terms_done
              (loop $terms
                (br_if $terms_done (i32.ge_u (local.get $r) (local.get $rank)))
                (local.set $v (f32x4.add (local.get $v) (f32x4.mul
                  (v128.load32_splat (i32.add (local.get $hs) (i32.shl (local.get $r) (i32.const 2))))
                  (v128.load (local.get $plane)))))
                (local.set $plane (i32.add (local.get $plane) (local.get $rowBytes)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $terms)))
            (v128.store (i32.add (local.get $yr) (local.get $i)) (local.get $v))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $out)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $rows))))

  ;; With h = scale · x Aᵀ and g = scale · dy B for each row: dx = dy + Σ_r g[r] A[r],
  ;; gradA[r] += g[r] x and gradBᵀ[r] += h[r] dy.
  (func (export "backward")
    (param $x i32) (param $dy i32) (param $a i32) (param $bt i32) (param $ga i32) (param $gbt i32)
    (param $dx i32) (param $hs i32) (param $gs i32)
    (param $batch i32) (param $d i32) (param $rank i32) (param $scale f32)
    (local $rowBytes i32) (local $row i32) (local $xr i32) (local $er i32) (local $dr i32)
    (local $r i32) (local $a0 i32) (local $a1 i32) (local $b0 i32) (local $b1 i32) (local $i i32)
    (local $offset i32) (local $at i32)
    (local $v v128) (local $e v128) (local $acc v128) (local $g v128) (local $h v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128)
    (local.set $rowBytes (i32.shl (local.get $d) (i32.const 2)))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $batch)))
        (local.set $offset (i32.mul (local.get $row) (local.get $rowBytes)))
        (local.set $xr (i32.add (local.get $x) (local.get $offset)))
        (local.set $er (i32.add (local.get $dy) (local.get $offset)))
        (local.set $dr (i32.add (local.get $dx) (local.get $offset)))
        ;; hs and gs, two ranks at a time: x against A's rows, dy against Bᵀ's.
        (local.set $r (i32.const 0))
        (block $ranks_done
          (loop $ranks
            (br_if $ranks_done (i32.ge_u (local.get $r) (local.get $rank)))
            (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $rowBytes))))
            (local.set $a1 (i32.add (local.get $a0) (local.get $rowBytes)))
            (local.set $b0 (i32.add (local.get $bt) (i32.mul (local.get $r) (local.get $rowBytes))))
            (local.set $b1 (i32.add (local.get $b0) (local.get $rowBytes)))
            (local.set $c0 (v128.const i32x4 0 0 0 0))
            (local.set $c1 (v128.const i32x4 0 0 0 0))
            (local.set $c2 (v128.const i32x4 0 0 0 0))
            (local.set $c3 (v128.const i32x4 0 0 0 0))
            (local.set $i (i32.const 0))
            (block $dot_done
              (loop $dot
                (br_if $dot_done (i32.ge_u (local.get $i) (local.get $rowBytes)))
                (local.set $v (v128.load (i32.add (local.get $xr) (local.get $i))))
                (local.set $e (v128.load (i32.add (local.get $er) (local.get $i))))
                (local.set $c0 (f32x4.add (local.get $c0)
                  (f32x4.mul (local.get $v) (v128.load (i32.add (local.get $a0) (local.get $i))))))
                (local.set $c1 (f32x4.add (local.get $c1)
                  (f32x4.mul (local.get $v) (v128.load (i32.add (local.get $a1) (local.get $i))))))
                (local.set $c2 (f32x4.add (local.get $c2)
                  (f32x4.mul (local.get $e) (v128.load (i32.add (local.get $b0) (local.get $i))))))
                (local.set $c3 (f32x4.add (local.get $c3)
                  (f32x4.mul (local.get $e) (v128.load (i32.add (local.get $b1) (local.get $i))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $dot)))
            (local.set $at (i32.shl (local.get $r) (i32.const 2)))
            (f32.store (i32.add (local.get $hs) (local.get $at))
              (f32.mul (local.get $scale) (call $sum (local.get $c0))))
            (f32.store offset=4 (i32.add (local.get $hs) (local.get $at))
              (f32.mul (local.get $scale) (call $sum (local.get $c1))))
            (f32.store (i32.add (local.get $gs) (local.get $at))
              (f32.mul (local.get $scale) (call $sum (local.get $c2))))
            (f32.store offset=4 (i32.add (local.get $gs) (local.get $at))
              (f32.mul (local.get $scale) (call $sum (local.get $c3))))
            (local.set $r (i32.add (local.get $r) (i32.const 2)))
            (br $ranks)))
        ;; dx, gradA and gradBᵀ, four lanes at a time.
        (local.set $i (i32.const 0))
        (block $out_done
          (loop $out
            (br_if $out_done (i32.ge_u (local.get $i) (local.get $rowBytes)))
            (local.set $v (v128.load (i32.add (local.get $xr) (local.get $i))))
            (local.set $e (v128.load (i32.add (local.get $er) (local.get $i))))
            (local.set $acc (local.get $e))
            (local.set $r (i32.const 0))
            (local.set $offset (local.get $i))
            (block $terms_done
              (loop $terms
                (br_if $terms_done (i32.ge_u (local.get $r) (local.get $rank)))
                (local.set $at (i32.shl (local.get $r) (i32.const 2)))
                (local.set $g (v128.load32_splat (i32.add (local.get $gs) (local.get $at))))
                (local.set $h (v128.load32_splat (i32.add (local.get $hs) (local.get $at))))
                (local.set $acc (f32x4.add (local.get $acc)
                  (f32x4.mul (local.get $g) (v128.load (i32.add (local.get $a) (local.get $offset))))))
                (local.set $at (i32.add (local.get $ga) (local.get $offset)))
                (v128.store (local.get $at)
                  (f32x4.add (v128.load (local.get $at)) (f32x4.mul (local.get $g) (local.get $v))))
                (local.set $at (i32.add (local.get $gbt) (local.get $offset)))
                (v128.store (local.get $at)
                  (f32x4.add (v128.load (local.get $at)) (f32x4.mul (local.get $h) (local.get $e))))
                (local.set $offset (i32.add (local.get $offset) (local.get $rowBytes)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $terms)))
            (v128.store (i32.add (local.get $dr) (local.get $i)) (local.get $acc))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $out)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $rows)))))
