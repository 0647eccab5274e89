"""Train snnTorch tutorial 6's convolutional SNN (or the seed MLP) on an MNIST-style folder and
print the test accuracy: the training entry for `--arch csnn` until the `minisnn train` command
takes an --arch option.

    python benchmarks/train_csnn.py                        # the bundled sample, 1 epoch, 25 steps
    python benchmarks/train_csnn.py --data data/mnist      # full MNIST (python -m minisnn download)
    python benchmarks/train_csnn.py --data data/fashion-mnist --epochs 3

The recipe is snnTorch's (minisnn.models.RECIPES['csnn']): β 0.5, fast sigmoid of slope 25,
snnTorch's ce_rate_loss (ms.ce_rate_loss), Adam lr 1e-2, batch 128 (drop_last, shuffled),
25 steps; the image is shown unchanged at every step (its first convolution computed once). The test accuracy is
rate-decoded (the class with the most output spikes) over the whole test set.
"""
import argparse
import sys
import time

import numpy as np

import minisnn as ms
from minisnn import data as data_mod
from minisnn.models import RECIPES, as_images, build


def train_step(net, opt, x, y, num_steps, loss):
    """One iteration: forward, the recipe's loss, BPTT, one Adam step. Returns the loss."""
    opt.zero_grad()
    spk, mem = net(x, num_steps)
    if loss == "ce_rate":
        L, d_spk = ms.ce_rate_loss(spk, y)
        net.backward(d_spk=d_spk)
    else:
        L, d_mem = ms.ce_membrane_loss(mem, y)
        net.backward(d_mem=d_mem)
    opt.step()
    return float(L)


def evaluate(net, arch, x, y, num_steps, batch_size=128):
    """Rate-decoded accuracy over all of x: (correct, total)."""
    correct = 0
    for xb, yb in data_mod.iterate_batches(x, y, batch_size, shuffle=False, drop_last=False,
                                           dtype=net.dtype):
        spk, _ = net(as_images(xb, arch), num_steps)
        correct += int((ms.predict_rate(spk) == yb).sum())
    net.record = None
    return correct, len(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="an MNIST-style folder or 'mnist-sample' (default: minisnn's data rule: "
                        "$MINISNN_DATA, else data/mnist, else the bundled sample)")
    p.add_argument("--arch", choices=sorted(RECIPES), default="csnn")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="time steps (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate (recipe's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iters", type=int, default=None)
    p.add_argument("--report-every", type=int, default=10)
    args = p.parse_args(argv)
    recipe = RECIPES[args.arch]
    steps = args.steps or recipe.steps
    batch = args.batch_size or recipe.batch_size
    choice = data_mod.resolve_data(args.data)
    print(choice.line())
    try:
        data = data_mod.load_dataset(choice.source, dtype="uint8")
    except data_mod.DataError as e:
        sys.exit(f"error: {e}")

    net = build(args.arch, rng=args.seed)
    opt = ms.Adam(net.parameters(), lr=args.lr or recipe.lr, betas=(0.9, 0.999))
    print(f"{args.arch} on {data.name} ({len(data.train_y)} training images): {steps} steps, "
          f"batch {batch}, lr {opt.lr}, {args.epochs} epoch(s)\n{net}")
    it, start = 0, time.perf_counter()
    for epoch in range(args.epochs):
        for xb, yb in data_mod.iterate_batches(data.train_x, data.train_y, batch, seed=args.seed,
                                               epoch=epoch, dtype="float32"):
            loss = train_step(net, opt, as_images(xb, args.arch), yb, steps, recipe.loss)
            it += 1
            if it % args.report_every == 0:
                print(f"epoch {epoch} iteration {it}: loss {loss:.4f} "
                      f"({(time.perf_counter() - start) / it:.3f} s/iteration)", flush=True)
            if args.max_iters and it >= args.max_iters:
                break
    train_s = time.perf_counter() - start
    correct, total = evaluate(net, args.arch, data.test_x, data.test_y, steps)
    print(f"iterations: {it}\ntraining time: {train_s:.1f} s ({train_s / max(it, 1):.3f} "
          f"s/iteration)\ntest accuracy: {correct / total:.4f} ({correct}/{total})")


if __name__ == "__main__":
    main()
