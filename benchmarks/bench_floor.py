"""How far the CPU fast path is from this machine's floor: GEMM rate, memory bandwidth, MACs.

Usage::

    python benchmarks/bench_floor.py [--size 256x256] [--threads 2] [--json out.json]

Measured in one process, with ``--threads`` torch threads and the tools' allocator setting
(``hidiff_mm.utils.cli.keep_freed_memory``):

* the machine: fp32 GEMM rate (``torch.mm``, 2048^3, and the Transformer's widest 1x1
  projection as a GEMM, (H*W) x 96 x 255) and memory bandwidth (``copy_`` of 256 MiB: bytes read
  plus written per second);
* the GoPro Transformer's fast path at ``--size`` (WxH; random weights, a fixed prior): wall
  time of a forward (median of 3 after a warm-up), its MACs (``FlopCounterMode``: the products it
  really runs) and the MACs of the exact form (the official arithmetic);
* where the time goes: one profiled forward, its operators grouped into products (GEMMs and
  1x1 convolutions), 3x3 depthwise convolutions, other convolutions, layer norm, GELU and the
  rest (element-wise, copies, softmax), each with its share of the time, and for the products
  the GFLOP/s they reached;
* the floor: the products at the best GEMM rate seen (the two measured and the one the
  forward's own products reached) plus one pass over the
  tensors of every data-moving operator at the measured bandwidth (the depthwise convolutions
  counted so: they do 9 MACs a value), and the forward's time as a multiple of it.
"""
import argparse
import json
import statistics
import time
from math import prod
from typing import Callable, Dict, List

from _common import machine, worker_setup

GROUPS = ('products', 'depthwise conv 3x3', 'other conv', 'layer norm', 'GELU', 'rest')
PRODUCTS = {'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm'}
CONVS = {'aten::mkldnn_convolution', 'aten::_slow_conv2d_forward'}
# Operators that move data (views, reshapes and the dispatcher's wrappers move none).
MOVERS = {'aten::add', 'aten::add_', 'aten::mul', 'aten::mul_', 'aten::div', 'aten::sub',
          'aten::copy_', 'aten::cat', 'aten::_softmax', 'aten::gelu', 'aten::native_layer_norm',
          'aten::pixel_shuffle', 'aten::pixel_unshuffle', 'aten::linalg_vector_norm',
          'aten::fill_', 'aten::zero_', 'aten::clamp_min', 'aten::sqrt'}


def median_time(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_rates(pixels: int) -> Dict[str, float]:
    """fp32 GEMM GFLOP/s (square and the model's projection shape) and copy bandwidth GB/s."""
    import torch
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    square = 2 * 2048**3 / median_time(lambda: torch.mm(a, b), 5) / 1e9
    x, w = torch.randn(pixels, 96), torch.randn(96, 255)
    proj = 2 * pixels * 96 * 255 / median_time(lambda: torch.mm(x, w), 5) / 1e9
    src = torch.ones(64 << 20)
    dst = torch.empty_like(src)
    bandwidth = 2 * src.numel() * 4 / median_time(lambda: dst.copy_(src), 5) / 1e9
    return dict(gemm_square_gflops=square, gemm_projection_gflops=proj,
                copy_bandwidth_gbs=bandwidth)


def group_of(name: str, shapes: List[List[int]]) -> str:
    """The group of a profiled operator from its name and input shapes."""
    if name in PRODUCTS:
        return 'products'
    if name in CONVS:
        weight = shapes[1] if len(shapes) > 1 else []
        if len(weight) == 4 and weight[2:] == [1, 1]:
            return 'products'
        if len(weight) == 4 and weight[1] == 1:
            return 'depthwise conv 3x3'
        return 'other conv'
    if 'layer_norm' in name:
        return 'layer norm'
    if 'gelu' in name:
        return 'GELU'
    return 'rest'


def profile_groups(forward: Callable[[], object]) -> Dict[str, Dict[str, float]]:
    """Self CPU time, FLOPs of the products and element-wise bytes, per group."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        forward()
    groups = {g: dict(seconds=0.0, flops=0.0, bytes=0.0) for g in GROUPS}
    for event in prof.key_averages(group_by_input_shape=True):
        shapes = [list(s) for s in event.input_shapes if isinstance(s, (list, tuple))]
        name = group_of(event.key, shapes)
        group = groups[name]
        group['seconds'] += event.self_cpu_time_total / 1e6
        if event.key in PRODUCTS:
            group['flops'] += event.flops or 0
        elif event.key in CONVS and name == 'products':
            weight = shapes[1]
            pixels = prod(shapes[0]) // max(shapes[0][1], 1)
            group['flops'] += 2 * pixels * weight[0] * weight[1] * event.count
        elif event.key in CONVS or event.key in MOVERS:
            # every input read once, one output of the first input's size written
            moved = sum(prod(shape) for shape in shapes) + (prod(shapes[0]) if shapes else 0)
            group['bytes'] += 4 * moved * event.count
    return groups


def run(args) -> Dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hidiff_mm.models.backbones import HIDiffTransformer
    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    width, height = (int(v) for v in args.size.lower().split('x'))
    torch.manual_seed(0)
    net = HIDiffTransformer().eval()
    img, prior = torch.rand(1, 3, height, width), torch.randn(1, 16, 256)
    result = dict(cpu=machine('keep'), torch=torch.__version__, threads=args.threads,
                  size=args.size,
                  **machine_rates(height * width))

    def macs() -> int:
        with FlopCounterMode(display=False) as counter:
            net(img, prior)
        return counter.get_total_flops() // 2

    with torch.no_grad():
        convert_to_exact(net)
        result['exact_macs'] = macs()
        convert_to_fast(net)
        result['fast_macs'] = macs()
        result['forward_s'] = median_time(lambda: net(img, prior))
        groups = profile_groups(lambda: net(img, prior))
    total = sum(g['seconds'] for g in groups.values())
    products = groups['products']
    reached = products['flops'] / products['seconds'] / 1e9 if products['seconds'] else 0.0
    peak = max(result['gemm_square_gflops'], result['gemm_projection_gflops'], reached)
    floor_products = 2 * result['fast_macs'] / (peak * 1e9)
    floor_memory = sum(g['bytes'] for name, g in groups.items()
                       if name != 'products') / (result['copy_bandwidth_gbs'] * 1e9)
    result.update(groups=groups, profiled_s=total, floor_gflops=peak,
                  floor_s=floor_products + floor_memory,
                  floor_products_s=floor_products, floor_memory_s=floor_memory)
    return result


def format_report(r: Dict) -> str:
    lines = [f"CPU: {r['cpu']}; torch {r['torch']}, {r['threads']} thread(s); "
             f"HIDiffTransformer (GoPro), fast path, {r['size']}",
             '',
             '| machine | value |', '|---|---|',
             f"| fp32 GEMM 2048^3 | {r['gemm_square_gflops']:.1f} GFLOP/s |",
             f"| fp32 GEMM (H*W) x 96 x 255 | {r['gemm_projection_gflops']:.1f} GFLOP/s |",
             f"| copy bandwidth (read + write) | {r['copy_bandwidth_gbs']:.1f} GB/s |",
             f"| MACs, exact form / fast form | {r['exact_macs'] / 1e9:.2f} G / "
             f"{r['fast_macs'] / 1e9:.2f} G |",
             f"| forward, fast path | {r['forward_s']:.3f} s |",
             f"| floor: products at {r['floor_gflops']:.0f} GFLOP/s + the rest at the bandwidth | "
             f"{r['floor_products_s']:.3f} + {r['floor_memory_s']:.3f} = {r['floor_s']:.3f} s |",
             f"| forward / floor | {r['forward_s'] / r['floor_s']:.2f}x |",
             '',
             '| operators | share of the time | seconds | GFLOP/s | GB moved |',
             '|---|---|---|---|---|']
    for name, g in r['groups'].items():
        rate = f"{g['flops'] / g['seconds'] / 1e9:.1f}" if g['flops'] and g['seconds'] else ''
        moved = f"{g['bytes'] / 1e9:.2f}" if g['bytes'] else ''
        lines.append(f"| {name} | {100 * g['seconds'] / r['profiled_s']:.1f} % | "
                     f"{g['seconds']:.3f} | {rate} | {moved} |")
    return '\n'.join(lines)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='256x256', help='WxH')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    worker_setup(args.threads)
    result = run(args)
    print(format_report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
