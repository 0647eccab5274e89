"""A skip connection: out = block(X) + X, the spike-element-wise ADD of SEW-ResNet."""
from .network import backward_layers, check_layer, forward_layers
from .record import Record


def _sum_to(d, shape):
    """d summed over its time axis when `shape` has a time axis of length 1 (a static value that
    was used at every step: eq. 6 adds the gradient of every use)."""
    if d.shape[0] != shape[0] and shape[0] == 1:
        return d.sum(axis=0, keepdims=True)
    return d


class Residual:
    """out = F(X) + X, where F is the block: the layers given, run in order (SEW-ResNet's ADD
    connection; with spiking blocks, out counts the spikes of both paths).

    Gradient: X reaches the output along two paths, so its gradient is the sum of both:

        ∂L/∂X = ∂L/∂out · ∂F/∂X  (through the block, by its own backward)  +  ∂L/∂out  (the skip)

    The skip term is the identity: however small the block's gradient becomes, ∂L/∂out reaches
    X undiminished, which is why deep stacks of residual blocks still train. A static X (1, B, …)
    with a block whose output varies in time (a spiking block) broadcasts over the steps, and its
    skip gradient is summed over time. F(X) and X must have the same shape (apart from a time
    axis of length 1).

    The block's layers are `self.layers`, so Sequential, the optimizers and save/load find their
    parameters (named 'i.j.W': layer j of the Residual at position i).
    """
    state_names = ()   # its state lives in the block's layers; the output is not a spike record

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Residual needs at least one layer in its block")
        for j, layer in enumerate(layers):
            check_layer(layer, f"layer {j} of the Residual block")
        self.layers = list(layers)

    @property
    def sample_ndim(self):
        return getattr(self.layers[0], "sample_ndim", None)

    def __repr__(self):
        inner = ", ".join(repr(l) for l in self.layers)
        return f"Residual({inner})"

    def param_names(self):
        return ()     # its own: none; the block's are found through self.layers

    def forward(self, X, num_steps):
        F, records = forward_layers(self.layers, X, num_steps)
        times = (F.shape[0], X.shape[0])
        if F.shape[1:] != X.shape[1:] or (times[0] != times[1] and 1 not in times):
            raise ValueError(f"Residual: the block's output has shape {tuple(F.shape)} but its "
                             f"input has shape {tuple(X.shape)}; block(x) + x needs the same "
                             f"shape (apart from a time axis of length 1). Give the block "
                             f"layers that keep the number of channels and the image size "
                             f"(e.g. Conv2d with padding = kernel_size // 2)")
        out = F + X                                          # broadcasts a static side over T
        return out, Record(block=records, X_shape=X.shape, F_shape=F.shape)

    def backward(self, rec, d_out, need_dX=True):
        skip = _sum_to(d_out, rec.X_shape) if need_dX else None
        if skip is d_out:
            skip = d_out.copy()        # the block may reuse what it is given: keep our own
        dF = _sum_to(d_out, rec.F_shape)
        dX = backward_layers(self.layers, rec.block, dF, need_dX=need_dX)
        if not need_dX:
            return None
        skip += dX                     # both paths' gradients accumulate, never overwrite
        return skip
