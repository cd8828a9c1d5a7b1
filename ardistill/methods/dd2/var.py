"""DD2's VAR adapter (`VARFamily`): the generic adapter (`ardistill.methods.dd2.adapter.DD2Family`: the teacher's
per-position sampling distribution on a prefix, network space, nearest codes, the tuned model's Euler sampler,
decoding) with VAR's networks: a copy of the teacher's transformer reading continuous code vectors through VAR's own
next-scale input path (`ardistill.models.dd2.var`), one AR step = one scale. VAR reads code vectors already: no
continuous adaptation.

Shapes: B batch, L tokens (Σ pn²), C code dimension, V codebook size.
"""

from __future__ import annotations

from ardistill.errors import ArdistillError
from ardistill.methods.dd2.adapter import DD2Family
from ardistill.models.dd2.net import DD2Net
from ardistill.models.dd2.var import var_dd2_net


class VARFamily(DD2Family):
    """DD2 adapter for a loaded `VARTeacher` (arguments: `DD2Family`)."""

    def _network(self, *, head_width: int, head_depth: int, embedding_hidden: int) -> DD2Net:
        if embedding_hidden:
            raise ArdistillError("VAR's DD2 networks read code vectors directly; they have no input embedding to size")
        return var_dd2_net(self.teacher.network, self.teacher.quantizer, code_scale=self.code_scale,
                           head_width=head_width, head_depth=head_depth)


__all__ = ["VARFamily"]
