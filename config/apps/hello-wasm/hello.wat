;; The EOS sample workload: writes a greeting to stdout every second, forever.
;; WASI preview 1; the EN's wasm driver captures stdout in the component's stdout.log.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "hello from eos\n")
  (func (export "_start")
    ;; iovec at 0: the greeting at 64, 15 bytes
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 15))
    ;; subscription at 128: a relative 1 s monotonic-clock timeout
    (i32.store8 (i32.const 136) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 1))
    (i64.store (i32.const 152) (i64.const 1000000000))
    (i64.store (i32.const 160) (i64.const 1000000))
    (i32.store16 (i32.const 168) (i32.const 0))
    (loop $forever
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
      (drop (call $poll_oneoff (i32.const 128) (i32.const 256) (i32.const 1) (i32.const 40)))
      (br $forever))))
