"""A functional network run as XLA-compiled segments between its batch-norm layers.

Why: under several replicas on CPUs, XLA has no collectives, and a compiled function inside
`strategy.run` cannot read a replica's variables (XLA places it on the first device).
Synchronised batch norm all-reduces the batch moments in the middle of the forward pass (and
its gradient all-reduces again on the way back), so a GAN with batch norm cannot compile a
replica's whole step the way BEGAN does (`GAN.replica_compiled`). Here every run of layers
between two batch norms compiles on its own, as a pure function of its weights' values and its
input tensors; the batch-norm layers run plainly between the segments, all-reducing and
updating their moving statistics as usual. The convolutions, where the time goes, run under
XLA; a `GradientTape` around the call differentiates through the compiled segments (their
gradients are compiled too) and the plain all-reduces alike.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _is_batch_norm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


class SegmentedNetwork:
    """`network(inputs, training=training)`, with the layers between batch norms XLA-compiled.

    Computes the same function with the same variables as the network: the segments read the
    weights' values (passed in as tensors, read inside the caller's tape so that it watches
    them) through `keras.StatelessScope`, and the batch-norm layers are called as they are.

    Args:
      network: a functional `keras.Model` whose non-trainable state is all in batch norms.
      training: the mode every layer runs in.
    """

    def __init__(self, network: keras.Model, training: bool):
        self.network = network
        self.training = bool(training)
        self.steps = []  # ("plain", node) or ("xla", segment)
        for node in _nodes_in_order(network):
            if _is_batch_norm(node.operation):
                self.steps.append(("plain", node))
                continue
            if node.operation.non_trainable_variables:
                raise ValueError(
                    f"{network.name}: layer {node.operation.name} holds non-trainable state "
                    "outside batch norm, which a compiled segment cannot update"
                )
            if not self.steps or self.steps[-1][0] != "xla":
                self.steps.append(("xla", []))
            self.steps[-1][1].append(node)
        self.steps = [
            (kind, _Segment(part, self.training) if kind == "xla" else part)
            for kind, part in self.steps
        ]

    def __call__(self, inputs):
        values = {}
        for reference, tensor in zip(self.network.inputs, tf.nest.flatten(inputs)):
            values[id(reference)] = tensor
        for kind, part in self.steps:
            if kind == "xla":
                part.run(values)
            else:
                _run_node(part, values, self.training)
        outputs = [values[id(reference)] for reference in self.network.outputs]
        return outputs[0] if len(outputs) == 1 else outputs


class _Segment:
    """Consecutive non-batch-norm layers of a network, compiled as one XLA function."""

    def __init__(self, nodes, training: bool):
        self.nodes = nodes
        self.training = training
        produced = {id(x) for node in nodes for x in node.outputs}
        self.input_ids = []
        for node in nodes:
            for x in node.input_tensors:
                if id(x) not in produced and id(x) not in self.input_ids:
                    self.input_ids.append(id(x))
        self.output_ids = [id(x) for node in nodes for x in node.outputs]
        self.variables = [v for node in nodes for v in node.operation.trainable_variables]
        self.compiled = tf.function(self._compute, jit_compile=True)

    def run(self, values: dict) -> None:
        """Reads the segment's inputs from `values` and writes its outputs into it."""
        weights = [tf.convert_to_tensor(v.value) for v in self.variables]
        outputs = self.compiled(weights, [values[i] for i in self.input_ids])
        values.update(zip(self.output_ids, outputs))

    def _compute(self, weights, inputs):
        values = dict(zip(self.input_ids, inputs))
        with keras.StatelessScope(state_mapping=list(zip(self.variables, weights))):
            for node in self.nodes:
                _run_node(node, values, self.training)
        return [values[i] for i in self.output_ids]


def _run_node(node, values: dict, training: bool) -> None:
    """Calls one layer of the graph on its inputs from `values` and writes its outputs there."""
    args, kwargs = node.arguments.fill_in(values)
    # A layer whose call takes no `training` drops it (Layer.__call__).
    outputs = node.operation(*args, training=training, **kwargs)
    for reference, tensor in zip(node.outputs, tf.nest.flatten(outputs)):
        values[id(reference)] = tensor


def _nodes_in_order(network: keras.Model):
    """The network's layer calls in the order Keras runs them (deepest first)."""
    by_depth = network._nodes_by_depth  # Keras 3's functional graph, as `Functional.call` walks it
    order = []
    for depth in sorted(by_depth, reverse=True):
        order.extend(node for node in by_depth[depth] if node.operation and not node.is_input)
    return order
