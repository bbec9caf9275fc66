"""longest: a moa strategy plugin (contract moa:strategy@0.2.0), in Python.

Keeps the k longest proposals (params: {"k": 2}), counted in characters, ties to the
earlier proposal, in proposal order; on the final layer with one proposal left, that
proposal is the answer. The same strategy as host/plugins/examples/longest (Rust) and
host/plugins/js/longest; a test holds the three equal.

Build (componentize-py, WASI stubbed out: the sandbox grants none of it):
    componentize-py -d wit -w plugin componentize --stub-wasi app -o longest.wasm
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


def parse_k(params: str) -> int:
    try:
        obj = json.loads(params)
    except ValueError as e:
        raise Err(f"params: {e}")
    if not isinstance(obj, dict):
        raise Err("params: not a JSON object")
    for key in obj:
        if key != "k":
            raise Err(f"unknown parameter {json.dumps(key)} (it takes k)")
    k = obj.get("k", 2)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise Err("k must be an integer >= 1")
    return k


class Strategy(exports.Strategy):
    def describe(self) -> types.Info:
        return types.Info(
            name="longest",
            version="0.1.0",
            description="Keeps the k longest proposals.",
            params='{"k": "proposals kept (2)"}',
        )

    def decide(self, ctx: types.Context) -> types.Decided:
        k = parse_k(ctx.params)
        props = ctx.proposals
        n = len(props)
        if ctx.layer >= ctx.layer_count and n == 1:
            return types.Decided(
                decision=types.Decision_Answer(props[0].text),
                note="the only proposal is the answer",
            )
        # Longest first; ties to the earlier proposal (the sort is stable).
        order = sorted(range(n), key=lambda i: -len(props[i].text))
        kept = sorted(order[:k])
        return types.Decided(
            decision=types.Decision_Keep(kept),
            note=f"kept the {len(kept)} longest of {n}",
        )
