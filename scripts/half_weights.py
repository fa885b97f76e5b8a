#!/usr/bin/env python
"""Store a weights file's floating-point tensors in float16 (half the file), keeping its
config and training record: how the shipped ``hybrid-blind``, ``hybrid-sigma25`` and
``dncnn-matched-upscale`` fit the package's 5 MB (python/sparseforge/data/README.md).

    python scripts/half_weights.py IN.pt OUT.pt

OUT loads with ``sparseforge.restore.load_model`` into the usual float32 model; IN (the
float32 file that training wrote) is left as it is. Refuses to overwrite IN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="a float32 weights file (save_model / train)")
    p.add_argument("target", type=Path, help="the float16 file to write")
    args = p.parse_args(argv)
    if args.target.resolve() == args.source.resolve():
        p.error("TARGET must differ from SOURCE (the float32 file is the record)")
    from sparseforge.restore import load_model, save_model

    model = load_model(args.source)  # its training record comes back as model.meta
    save_model(model, args.target, precision="float16", **model.meta)
    print(f"{args.source} ({args.source.stat().st_size:,} bytes) -> {args.target} "
          f"({args.target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
