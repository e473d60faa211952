#!/usr/bin/env python3
"""Writes the PyTorch golden fixtures under tests/golden/fixtures/.

Run with Debian's interpreter and torch (never needed to build or run the tests):

    /usr/bin/python3 tests/golden/make_golden.py [only_this_module ...]

Each gen_*.py module beside this file has generate(out_dir), writing one or more
<name>.safetensors files with inputs, parameters, outputs and gradients. Everything runs in
float64 and is stored as float32, so the fixtures are the exact answer to the float32 inputs.
"""
import importlib
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    out_dir = os.path.join(HERE, "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    sys.path.insert(0, HERE)
    wanted = set(sys.argv[1:])
    for name in sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("gen_") and f.endswith(".py")):
        if wanted and name not in wanted:
            continue
        print(f"{name} ...")
        importlib.import_module(name).generate(out_dir)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"fixtures: {total} bytes in all")


if __name__ == "__main__":
    main()
