"""Images per second of `nasc train`: the training step of a DARTS_V2 network, and the data
pipeline, batched on the device against a per-image torchvision pipeline, measured in one run.

    python benchmarks/train_throughput.py            # DARTS_V2, C=36, 20 cells, batch 96
    python benchmarks/train_throughput.py --quick    # C=16, 8 cells
    python benchmarks/train_throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import apply_genotype, load_space, parse_arch
from nasc.runtime.data.images import CIFAR_STATS, Batches, ImageData


def synthetic_cifar(count: int) -> ImageData:
    """CIFAR-shaped uint8 images (the pipeline's cost does not depend on their content)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    mean, std = CIFAR_STATS["cifar10"]
    return ImageData(
        name="synthetic",
        train_images=images,
        train_labels=labels,
        test_images=images[:8],
        test_labels=labels[:8],
        classes=tuple(map(str, range(10))),
        mean=mean,
        std=std,
    )


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_rate(device, layers, width, batch, repeats, amp):
    space = load_space("darts", catalog=catalog())
    fixed = apply_genotype(space, parse_arch(space, "DARTS_V2"))
    net = compile_space(
        fixed,
        {"C": width, "layers": layers},
        CompileOptions(search=False, auxiliary=True, drop_path=True),
    ).to(device)
    net.set_drop_prob(0.2)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    criterion = nn.CrossEntropyLoss()
    images = torch.randn(batch, 3, 32, 32, device=device)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)
    times = []
    for index in range(repeats + 2):
        sync(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, aux = net(images)
            loss = criterion(logits.float(), labels) + 0.4 * criterion(aux.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        sync(device)
        if index >= 2:
            times.append(time.perf_counter() - started)
    return batch / statistics.median(times), sum(p.numel() for p in net.parameters())


def device_pipeline_rate(data, device, batch, images_count):
    batches = Batches(
        data, data.train_images, data.train_labels, batch, device, True, True, cutout=16
    )
    sync(device)
    started = time.perf_counter()
    seen = 0
    for images, _ in batches.epoch(seed=1):
        seen += len(images)
        if seen >= images_count:
            break
    sync(device)
    return seen / (time.perf_counter() - started)


def per_image_pipeline_rate(data, batch, images_count, workers):
    from PIL import Image
    from torchvision import transforms

    mean, std = CIFAR_STATS["cifar10"]

    class Cutout:
        def __init__(self, length):
            self.length = length

        def __call__(self, image):
            height, width = image.shape[1:]
            y, x = torch.randint(height, (1,)).item(), torch.randint(width, (1,)).item()
            top, bottom = max(0, y - self.length // 2), min(height, y + self.length // 2)
            left, right = max(0, x - self.length // 2), min(width, x + self.length // 2)
            image[:, top:bottom, left:right] = 0
            return image

    pipeline = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
            Cutout(16),
        ]
    )
    pictures = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in data.train_images]

    class Folder(torch.utils.data.Dataset):
        def __len__(self):
            return len(pictures)

        def __getitem__(self, index):
            return pipeline(pictures[index]), int(data.train_labels[index])

    loader = torch.utils.data.DataLoader(
        Folder(), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    started = time.perf_counter()
    seen = 0
    for images, _ in loader:
        seen += len(images)
        if seen >= images_count:
            break
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    width, layers = (16, 8) if args.quick else (36, 20)
    repeats = 2 if args.quick else args.repeats
    amp = device.type == "cuda"
    data = synthetic_cifar(4096 if args.quick else 20000)
    count = len(data.train_labels)

    print(f"device {device}, threads {torch.get_num_threads()}, batch {args.batch}")
    rate, parameters = step_rate(device, layers, width, args.batch, repeats, amp)
    print(
        f"training step, DARTS_V2 C={width} {layers} cells ({parameters:,} weights with the aux "
        f"head), drop path, aux head{', bf16' if amp else ''}: {rate:,.0f} images/s"
    )
    on_device = device_pipeline_rate(data, device, args.batch, count)
    print(f"data pipeline, batched on {device} (crop, flip, cutout): {on_device:,.0f} images/s")
    per_image = {}
    for workers in (0, 2):
        per_image[workers] = per_image_pipeline_rate(data, args.batch, count, workers)
        print(
            f"data pipeline, per-image torchvision, {workers} workers: "
            f"{per_image[workers]:,.0f} images/s"
        )
    best = max(per_image.values())
    print(
        f"ratio: batched / best per-image pipeline = {on_device / best:.1f}x; "
        f"data pipeline / training step = {on_device / rate:.1f}x"
    )


if __name__ == "__main__":
    main()
