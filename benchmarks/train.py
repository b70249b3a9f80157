"""Contrastive training throughput (images/s, forward + backward + AdamW step).

``tiny`` on this CPU in fp32 (the embedded default); when a GPU is present, also
``vit-l-14-336`` with random weights in bf16 autocast, with peak memory and the share of the
GPU's bf16 dense peak that the measured FLOP rate reaches (FLOPs counted by torch's
FlopCounterMode on one step).
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ml.models.backbone import BackboneSpec, build_model, build_tokenizer  # noqa: E402
from ml.train.common import autocast  # noqa: E402

CAPTION = (
    "A terrain view close to the town of Lyon in the region of Rhône in France. This location has a "
    "temperate oceanic climate. This photo is facing north."
)
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def measure(name: str, device: torch.device, batch: int, steps: int, warmup: int) -> dict:
    spec = BackboneSpec.named(name)
    torch.manual_seed(0)
    model = build_model(spec, "random").to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    tok = build_tokenizer(BackboneSpec.named("tiny"), Path("data/reference"))
    text = tok([CAPTION] * batch, padding="longest", max_length=spec.max_length, truncation=True, return_tensors="pt")
    text = {k: v.to(device) for k, v in text.items()}
    pixels = torch.randn(batch, 3, spec.image_size, spec.image_size, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        with autocast(device):
            loss = model(**text, pixel_values=pixels, return_loss=True).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    flops = None
    if device.type == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"model": name, "device": device.type, "batch": batch, "images_per_s": round(batch * steps / seconds, 1)}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        gpu = torch.cuda.get_device_name()
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in gpu), None)
        achieved = flops * steps / seconds / 1e12
        out |= {"gpu": gpu, "tflops": round(achieved, 1)}
        if peak:
            out["share_of_bf16_peak"] = round(achieved / peak, 3)
    return out


def main() -> None:
    results = [measure("tiny", torch.device("cpu"), batch=64, steps=8, warmup=2)]
    print(f"tiny on CPU ({THREADS} threads, fp32): {results[0]}")
    if torch.cuda.is_available():
        results.append(measure("vit-l-14-336", torch.device("cuda"), batch=64, steps=10, warmup=3))
        print(f"vit-l-14-336 on GPU (bf16 autocast): {results[1]}")
    else:
        print("no GPU here: vit-l-14-336 not measured")
    report({"images_per_s": results[0]["images_per_s"], "model": "tiny", "runs": results})


if __name__ == "__main__":
    main()
