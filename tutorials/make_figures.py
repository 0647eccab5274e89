"""Regenerate the figure(s) that the project README shows, into docs/figures/.

    python tutorials/make_figures.py          # full run of the tutorial (about half a minute on a laptop)
    python tutorials/make_figures.py --fast   # MINISNN_FAST=1: fewer iterations, a rougher figure

Each README figure is a figure of one tutorial: the tutorial runs headless, as a script, with
its output folder set to a temporary folder, and the chosen PNG is copied to docs/figures/.
The data are chosen by minisnn's one rule (minisnn.data.resolve_data), as the tutorials choose
them: $MINISNN_DATA if set, else the repository's data/mnist if it holds the four MNIST files,
else the MNIST sample bundled with minisnn; the line printed first says which.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEST = REPO / "docs" / "figures"

# README figure name -> (tutorial that draws it, the PNG it saves)
FIGURES = {
    "mnist_raster_and_membrane.png": ("05_train_mnist", "05_raster_and_membrane.png"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="run the tutorials in fast mode")
    args = parser.parse_args(argv)
    from minisnn.data import resolve_data
    choice = resolve_data(root=REPO)
    print(choice.line())
    DEST.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MPLBACKEND": "Agg", "MINISNN_TUTORIAL_OUT": tmp,
               "MINISNN_FAST": "1" if args.fast else "0",
               "MINISNN_DATA": str(choice.source)}        # the tutorial uses the same data
        for tutorial in sorted({t for t, _ in FIGURES.values()}):
            print(f"running {tutorial}.py{' (fast mode)' if args.fast else ''} ...", flush=True)
            proc = subprocess.run([sys.executable, str(HERE / f"{tutorial}.py")], cwd=REPO, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
                return f"{tutorial}.py failed (exit {proc.returncode}); no figure was changed"
        for name, (_, png) in FIGURES.items():
            shutil.copyfile(Path(tmp) / png, DEST / name)
            print(f"wrote {(DEST / name).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
