"""
Short sweeps at equal wall-clock: each candidate trains for the same minutes on the same data
and is compared by validation loss (the same validation rows for all). Writes JSON and a
Markdown table.

    python -m training.sweep --data training/work/tokens --minutes 3 --out training/work/sweep \
        --candidates '[{"preset": "cpu-s"}, {"preset": "cpu-m", "batch_size": 8}]'

Also measures fp32 against bf16 matrix multiply on this CPU (the trainer's dtype=auto rule).
"""
import argparse
import json
import os
import time

import torch

from training.train import TrainConfig, train, cpu_has_fast_bf16


def matmul_gflops(dtype, n=1024, seconds=3.0):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0, k = time.time(), 0
    while time.time() - t0 < seconds:
        a @ b
        k += 1
    return 2 * n ** 3 * k / (time.time() - t0) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--candidates", required=True, help="JSON list of TrainConfig overrides")
    ap.add_argument("--base", default="{}", help="JSON TrainConfig overrides shared by all candidates")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(os.cpu_count())
    report = {"cpu_fast_bf16_flags": cpu_has_fast_bf16(),
              "matmul_gflops": {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)},
              "minutes": args.minutes, "runs": []}
    print(json.dumps(report))
    base = json.loads(args.base)
    for i, over in enumerate(json.loads(args.candidates)):
        cfg = TrainConfig(**{**base, **over, "data": args.data, "minutes": args.minutes,
                             "out": os.path.join(args.out, f"c{i}.pt"), "ckpt_minutes": 0})
        _, res = train(cfg)
        row = {"overrides": over, "val_loss": res["val_loss"], "tokens": res["tokens"], "steps": res["steps"],
               "params": res["params"], "tokens_per_s": res["tokens_per_s_last_session"]}
        report["runs"].append(row)
        print(json.dumps(row))
        json.dump(report, open(os.path.join(args.out, "sweep.json"), "w"), indent=2)
    lines = [f"Equal wall-clock: {args.minutes} min each, {os.cpu_count()} threads. "
             f"Matrix multiply fp32 {report['matmul_gflops']['fp32']:.0f} GFLOP/s, "
             f"bf16 {report['matmul_gflops']['bf16']:.0f} GFLOP/s.", "",
             "| candidate | params | tokens/s | tokens | val loss (nats/token) |", "|---|---:|---:|---:|---:|"]
    for r in sorted(report["runs"], key=lambda r: r["val_loss"]):
        lines.append(f"| `{json.dumps(r['overrides'])}` | {r['params'] / 1e6:.2f}M | {r['tokens_per_s']:.0f} | "
                     f"{r['tokens'] / 1e6:.2f}M | {r['val_loss']:.3f} |")
    open(os.path.join(args.out, "sweep.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
