"""One OpenBLAS kernel candidate for the speed peer of `popo bench --only update`: is it correct, how fast is it.

Run once per candidate core type (OPENBLAS_CORETYPE is read when OpenBLAS loads, so each candidate is its own
process) with OPENBLAS_NUM_THREADS = the engine's threads. Correctness: a float32 product of two 512 x 512 normal
matrices against the float64 product of the same float32 inputs, the largest error relative to the largest entry
(float32's unit roundoff times a modest growth: a correct kernel gives about 1e-6, a wrong one O(1)). Speed: the best
of --rounds float32 products at --size, on the wall clock and per process CPU-second (the second discounts other
processes' time slices on a shared machine, so candidates probed minutes apart stay comparable). Prints one JSON line:
{"rel_err": ..., "gflops": ..., "gflops_cpu": ..., "torch": ...}.
"""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 512, generator=g)
    y = torch.randn(512, 512, generator=g)
    exact = x.double() @ y.double()
    rel_err = ((x @ y).double() - exact).abs().max().item() / exact.abs().max().item()
    n = a.size
    u = torch.randn(n, n, generator=g)
    v = torch.randn(n, n, generator=g)
    u @ v  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(a.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        u @ v
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    flop = 2.0 * n ** 3
    print(json.dumps({"rel_err": rel_err, "gflops": flop / best / 1e9, "gflops_cpu": flop / best_cpu / 1e9, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
