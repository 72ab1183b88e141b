#!/usr/bin/env python3
"""`python -m torch.distributed.run` (torchrun), mended for Debian's python3-torch 1.13 under
Python 3.11: there its Std.from_str returns None for every value (its `Std(int(v)) in Std` check
meets Python 3.11's changed Flag-enum membership), so each launch dies in to_map() before it
starts a worker. This replaces that one parser with the same parsing minus the broken check and
runs torchrun unchanged; on a torch whose parser works it changes nothing.

  torchrun.py [torchrun's arguments...]
"""
import re
import runpy
import sys

from torch.distributed.elastic.multiprocessing import api

if api.Std.from_str("0") is None:
    def from_str(vm):
        if re.fullmatch(r"[0-3]", vm):
            return api.Std(int(vm))
        if re.fullmatch(r"(\d+:[0-3],)*\d+:[0-3]", vm):
            return {int(i): api.Std(int(v)) for i, v in (m.split(":") for m in vm.split(","))}
        raise ValueError(f"{vm} does not match the values 0-3 or a map like 0:1,1:2")

    api.Std.from_str = staticmethod(from_str)

sys.argv[0] = "torchrun"
runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
