"""bf16 prediction: which CPUs can run it fast, and the bf16 copy of a network that runs it.

A bf16 prediction runs the Transformer on a copy of it whose weights are converted to bf16 once
(:class:`Bf16Copy`; converted again only after the fp32 weights change, e.g. by training). The
network then computes in bf16 where it moves data (feature maps, convolutions, GEMM operands)
and keeps fp32 where accuracy needs it: every GEMM and convolution accumulates in fp32 (oneDNN,
rounding only its output), layer norm and softmax compute their statistics in fp32, MDTA's
attention is normalised and applied in fp32 from its Gram matrices, and the global residual
(output + input image) is added in fp32. The prior (stage-2 encoder and sampler) stays fp32.

bf16 pays only on CPUs with bf16 dot-product units (AMX-BF16 or AVX512-BF16); elsewhere oneDNN
emulates them and bf16 is slower than fp32. :func:`bf16_unsupported_reason` says why a device
cannot run it (the prediction then runs fp32 and logs that line once).
"""
import copy
import os
from typing import Optional, Tuple

import torch
from torch import nn

#: CPU flags (``/proc/cpuinfo``) of bf16 dot-product units, best first, with their names.
BF16_CPU_FLAGS = (('amx_bf16', 'AMX-BF16'), ('avx512_bf16', 'AVX512-BF16'))
#: ``ONEDNN_MAX_CPU_ISA`` values (oneDNN's ``dnnl_cpu_isa_t`` names) that still allow each
#: unit; a lower limit makes oneDNN emulate bf16.
_ONEDNN_ISAS_WITH = {
    'AMX-BF16': {'AVX512_CORE_AMX', 'AVX512_CORE_AMX_FP16', 'AVX10_1_512_AMX',
                 'AVX10_1_512_AMX_FP16', 'AVX10_2_512_AMX_2', 'ALL', 'DEFAULT'},
    'AVX512-BF16': {'AVX512_CORE_BF16', 'AVX512_CORE_FP16', 'AVX10_1_512', 'AVX512_CORE_AMX',
                    'AVX512_CORE_AMX_FP16', 'AVX10_1_512_AMX', 'AVX10_1_512_AMX_FP16',
                    'AVX10_2_512', 'AVX10_2_512_AMX_2', 'ALL', 'DEFAULT'},
}
PRECISIONS = ('fp32', 'bf16')


def cpu_flags() -> frozenset:
    """The flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _onednn_isa_limit() -> Optional[str]:
    """The ISA limit set for oneDNN (``ONEDNN_MAX_CPU_ISA`` or the older ``DNNL_MAX_CPU_ISA``)."""
    value = os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA')
    return value.strip().upper() if value else None


def cpu_bf16_feature() -> Tuple[Optional[str], str]:
    """``(unit, why)``: the bf16 unit oneDNN can use on this CPU ('AMX-BF16', 'AVX512-BF16')
    or None, and a phrase that says what was found (for the log and the benchmarks)."""
    flags = cpu_flags()
    found = [name for flag, name in BF16_CPU_FLAGS if flag in flags]
    if not found:
        return None, 'this CPU has no bf16 units (neither amx_bf16 nor avx512_bf16 in its flags)'
    if not torch.backends.mkldnn.is_available():
        return None, 'this torch build has no oneDNN (mkldnn), which runs the bf16 GEMMs'
    limit = _onednn_isa_limit()
    usable = [name for name in found if limit is None or limit in _ONEDNN_ISAS_WITH[name]]
    if not usable:
        return None, (f'ONEDNN_MAX_CPU_ISA={limit} keeps oneDNN from the CPU\'s '
                      f'{" / ".join(found)} units')
    return usable[0], (f'{usable[0]} (ATen kernels: '
                       f'{torch.backends.cpu.get_cpu_capability()})')


def bf16_unsupported_reason(device: torch.device) -> Optional[str]:
    """None where ``device`` runs bf16 prediction fast, else why not (one phrase)."""
    if device.type == 'cpu':
        unit, why = cpu_bf16_feature()
        return None if unit else why
    if device.type == 'cuda':
        return None if torch.cuda.is_bf16_supported() else f'{device} has no bf16 support'
    return f'bf16 prediction is not set up for {device.type} devices'


def bf16_description(device: torch.device) -> str:
    """What a bf16 prediction on ``device`` uses, for the log."""
    if device.type == 'cpu':
        return f'CPU, {cpu_bf16_feature()[1]}'
    return str(device)


def _version_key(module: nn.Module) -> Tuple:
    """Identity and in-place version of every parameter and buffer: changes when any of them
    is replaced or modified (optimizer steps, ``load_state_dict``, ``.to()``)."""
    return tuple((id(t), t._version, t.device, t.dtype)
                 for t in (*module.parameters(), *module.buffers()))


class Bf16Copy:
    """A bf16 copy of a network, made once and made again only after the network changes.

    Not an ``nn.Module``, so an editor can hold it without it joining the state dict.
    ``get(net)`` returns the copy (parameters and buffers in bf16, eval mode, no gradients).
    """

    def __init__(self) -> None:
        self._copy: Optional[nn.Module] = None
        self._key: Optional[Tuple] = None
        self._source: Optional[int] = None

    def get(self, net: nn.Module) -> nn.Module:
        """The bf16 copy of ``net`` (``net`` itself is left as it is)."""
        key = _version_key(net)
        if self._copy is None or self._source != id(net) or self._key != key:
            self._copy = None  # free the old copy before making the new one
            clone = copy.deepcopy(net).requires_grad_(False).eval()
            self._copy = clone.to(torch.bfloat16)
            self._key, self._source = key, id(net)
        return self._copy
