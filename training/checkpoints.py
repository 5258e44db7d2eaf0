"""
Moving a GPU run's checkpoints off the device machine, which brings back at most 8 files of 16 MiB
(64 MiB) a call: the weights in bf16, in one tar split into 15 MiB parts.

    python -m training.checkpoints pack RUN OUT       # RUN's verifier.pt, ar.pt, drafter-*.pt -> OUT/weights.tar.NNN
    python -m training.checkpoints unpack SRC DEST    # SRC/weights.tar.NNN -> DEST/*.pt (fp32 again)

bf16 is also what the model folder ships (model.safetensors), and the int8 export starts from it.
"""
import glob
import io
import os
import sys
import tarfile

import torch

PART_BYTES = 15 * 1024 * 1024


def cast_floats(ck, dtype):
    ck = dict(ck)
    ck["model"] = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in ck["model"].items()}
    return ck


def pack(run, out):
    paths = [os.path.join(run, n) for n in ("verifier.pt", "ar.pt")] + sorted(glob.glob(os.path.join(run, "drafter-*.pt")))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in paths:
            if not os.path.exists(p):
                print(f"missing: {p}")
                continue
            b = io.BytesIO()
            torch.save(cast_floats(torch.load(p, map_location="cpu", weights_only=False), torch.bfloat16), b)
            info = tarfile.TarInfo(os.path.basename(p))
            info.size = b.tell()
            b.seek(0)
            tar.addfile(info, b)
            print(f"{os.path.basename(p)}: {info.size / 2**20:.1f} MiB in bf16")
    data = buf.getvalue()
    os.makedirs(out, exist_ok=True)
    for i in range(0, len(data), PART_BYTES):
        with open(os.path.join(out, f"weights.tar.{i // PART_BYTES:03d}"), "wb") as f:
            f.write(data[i:i + PART_BYTES])
    print(f"{len(data) / 2**20:.1f} MiB in {(len(data) + PART_BYTES - 1) // PART_BYTES} parts")


def unpack(src, dest):
    parts = sorted(glob.glob(os.path.join(src, "weights.tar.[0-9][0-9][0-9]")))
    if not parts:
        raise SystemExit(f"no weights.tar.NNN in {src}")
    data = b"".join(open(p, "rb").read() for p in parts)
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            ck = torch.load(tar.extractfile(m), map_location="cpu", weights_only=False)
            torch.save(cast_floats(ck, torch.float32), os.path.join(dest, m.name))
            print(f"{m.name} -> {dest}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        raise SystemExit(__doc__)
    (pack if sys.argv[1] == "pack" else unpack)(sys.argv[2], sys.argv[3])
