"""Trace the GPU default network symbolically after amp.init("float16") and report, per operator type,
the dtypes MXNet infers: `python amp_fp16_graph.py MODEL`. No GPU needed: only the graph is built.

A separate process because amp.init() patches MXNet's operators for the rest of the process.
"""
import json
import sys
from collections import Counter

import mxnet as mx
import numpy as np
from mxnet import gluon

from gtsrb.train import mixed_precision
from gtsrb.train.model import create_network

WATCHED = ("Convolution", "BatchNorm", "FullyConnected", "log_softmax")

dtype = mixed_precision.init([mx.gpu(0)])  # a Context object only: float16 AMP as on a GPU
net = create_network(sys.argv[1])
logits = net(mx.sym.var("data"))
graph = gluon.loss.SoftmaxCrossEntropyLoss()(logits, mx.sym.var("label"))  # as the train loop's loss
internals = graph.get_internals()
arg_types, out_types, aux_types = internals.infer_type(data=np.float32, label=np.float32)
out_of = dict(zip(internals.list_outputs(), out_types, strict=True))
types_of = {**dict(zip(internals.list_arguments(), arg_types, strict=True)),
            **dict(zip(internals.list_auxiliary_states(), aux_types, strict=True)), **out_of}
nodes = json.loads(graph.tojson(remove_amp_cast=False))["nodes"]  # the default hides AMP's casts


def name_of(entry: list[int]) -> str:
    """The output name of a node input entry (a variable's name, else <node>_output)."""
    node = nodes[entry[0]]
    return node["name"] if node["op"] == "null" else f"{node['name']}_output"


report: dict[str, Counter] = {op: Counter() for op in WATCHED}
for node in nodes:
    if node["op"] not in WATCHED:
        continue
    inputs = node["inputs"]
    counts = report[node["op"]]
    counts[f"out:{np.dtype(out_of[node['name'] + '_output']).name}"] += 1
    counts[f"data:{np.dtype(types_of[name_of(inputs[0])]).name}"] += 1
    counts[f"data_from:{nodes[inputs[0][0]]['op'] or 'input'}"] += 1
    for entry in inputs[1:]:
        source = nodes[entry[0]]
        counts[f"param_from:{source['op']}"] += 1
        counts[f"param:{np.dtype(types_of[name_of(entry)]).name}"] += 1
print(json.dumps({"dtype": dtype, "amp_casts": sum(n["op"] in ("amp_cast", "amp_multicast") for n in nodes),
                  "logits": np.dtype(out_of[logits.list_outputs()[0]]).name,
                  "loss": np.dtype(out_of[graph.list_outputs()[0]]).name,
                  **{op: dict(c) for op, c in report.items()}}))
