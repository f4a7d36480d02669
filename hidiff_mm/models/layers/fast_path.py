"""The fast forms of the Transformer's modules and the explicit conversions between the forms.

Each pair in :data:`FAST_FORMS` is an exact module, written like the official code, and its fast
form: a subclass with the same constructor, parameters and state-dict keys whose forward keeps
feature maps channels-last, fuses the layer norm, the residual adds and the output projections,
and folds HIM's projections into its prior tokens (``docs/performance.md`` lists what each lever
gives). Without autograd, the fast MDTA and GDFN also make their wide intermediate tensors in
row strips of at most ``strip_pixels`` pixels, which bounds the memory of a forward pass without
changing its result (a 3x3 depthwise conv needs one halo row each side).

A module's class says which arithmetic it runs; nothing depends on the tensor's device, and
nothing changes a module's class but the conversions below. A network is built in its exact form
(the code of the exact classes is the code that runs). Whoever builds a model to run on a device
converts it once: :func:`convert_for_device` (what ``init_model``, the tools' runner through
``FastPathHook`` and the benchmarks call) gives every network the form its ``fast_path`` setting
asks for on that device; :func:`convert_to_fast` / :func:`convert_to_exact` pin one form. Each
swaps the class of the listed modules in place (parameters, buffers, hooks and the optimizer's
references are untouched, as in RepVGG's ``switch_to_deploy`` but without re-parametrising);
moving a model afterwards (``.to()``, ``.cuda()``, ``.double()``) keeps its form, and
``print(model)`` names it (``FastMDTA`` or ``MDTA``; ``fast_path=..., form=...`` on each
network).
"""
from typing import Callable, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from ...utils.errors import ConfigError

DEFAULT_STRIP_PIXELS = 1 << 14

#: The (exact, fast) module pairs, filled by :func:`fast_form_of`; the equivalence tests are
#: generated from it (``tests/models/test_fast_path.py``).
FAST_FORMS: List[Tuple[Type[nn.Module], Type[nn.Module]]] = []


def fast_form_of(exact: Type[nn.Module]) -> Callable[[type], type]:
    """Class decorator: register the decorated class as the fast form of ``exact``.

    The fast form must subclass ``exact`` and add no constructor or state of its own, so that
    the one can become the other by a class swap.
    """

    def register(fast: type) -> type:
        if not issubclass(fast, exact) or '__init__' in vars(fast):
            raise TypeError(f'{fast.__name__} must subclass {exact.__name__} without a '
                            'constructor of its own to be its fast form')
        if any(known is exact for known, _ in FAST_FORMS):
            raise ValueError(f'{exact.__name__} already has a fast form')
        FAST_FORMS.append((exact, fast))
        return fast

    return register


def _check_strip_pixels(strip_pixels: int) -> None:
    if strip_pixels < 1:
        raise ConfigError(f'strip_pixels must be positive, got {strip_pixels}')


def _swap_forms(module: nn.Module, fast: bool,
                strip_pixels: int = DEFAULT_STRIP_PIXELS) -> nn.Module:
    """Give every listed module in ``module`` (itself included) its fast or exact class; fast
    modules that run in row strips get ``strip_pixels``."""
    _check_strip_pixels(strip_pixels)
    forms = dict(FAST_FORMS) if fast else {f: e for e, f in FAST_FORMS}
    for sub in module.modules():
        form = forms.get(type(sub), type(sub))
        if hasattr(form, 'strip_pixels'):  # a fast form that runs in row strips
            sub.strip_pixels = strip_pixels
        elif hasattr(type(sub), 'strip_pixels'):  # leaving one
            sub.__dict__.pop('strip_pixels', None)
        sub.__class__ = form
    return module


def _pin(module: nn.Module, fast: bool, strip_pixels: Optional[int] = None) -> None:
    """Set ``fast_path`` (and ``strip_pixels``) of every network in ``module`` that has the
    setting, so that a later :func:`convert_for_device` keeps the form."""
    for sub in module.modules():
        if isinstance(sub, FastPathPolicy):
            sub.fast_path = fast
            if strip_pixels is not None:
                sub.strip_pixels = strip_pixels


def convert_to_fast(module: nn.Module, strip_pixels: int = DEFAULT_STRIP_PIXELS) -> nn.Module:
    """Switch every module of ``module`` that has a fast form to it, on any device, in place,
    and pin the ``fast_path`` setting of its networks to True.

    Args:
        module: any module; modules without a fast form are left alone.
        strip_pixels: the row-strip size, in pixels, of MDTA / GDFN without autograd.

    Returns:
        ``module``, for chaining.
    """
    _check_strip_pixels(strip_pixels)
    _pin(module, True, strip_pixels)
    return _swap_forms(module, True, strip_pixels)


def convert_to_exact(module: nn.Module) -> nn.Module:
    """Switch every fast module of ``module`` back to its exact (official-style) form, in place,
    and pin the ``fast_path`` setting of its networks to False.

    Returns:
        ``module``, for chaining.
    """
    _pin(module, False)
    return _swap_forms(module, False)


def convert_for_device(module: nn.Module,
                       device: Union[str, torch.device, None] = None) -> nn.Module:
    """Give every network of ``module`` that has a ``fast_path`` setting (a
    :class:`FastPathPolicy`: ``HIDiffTransformer``, ``PriorGuidedBackbone``) the form that its
    setting asks for on ``device``, in place: ``'cpu'`` the fast form on the CPU, where it was
    measured to win, and the exact form on any other device, where it lost; True / False that
    form everywhere. Modules outside such a network keep their form.

    Call it once, where a model is built for a device (``init_model``, ``FastPathHook``); a
    later move does not change the form.

    Args:
        module: any module (an editor, a network, a model wrapper).
        device: the device the model runs on; default: where the parameters of each network
            are (a network without parameters counts as on the CPU).

    Returns:
        ``module``, for chaining.
    """
    for sub in module.modules():  # parents first, so a nested network's own setting wins
        if isinstance(sub, FastPathPolicy):
            sub.convert_for_device(device)
    return module


class FastPathPolicy(nn.Module):
    """Base of a network built from modules with fast forms: holds its ``fast_path`` setting.

    Subclasses call :meth:`configure_fast_path` in their constructor. The network is built in
    its exact form; the setting decides what :func:`convert_for_device` gives it, nothing else.
    """

    fast_path: Union[bool, str]
    strip_pixels: int

    def configure_fast_path(self, fast_path: Union[bool, str],
                            strip_pixels: int = DEFAULT_STRIP_PIXELS) -> None:
        """Store the setting (True, False or ``'cpu'``) and the row-strip size."""
        if fast_path not in (True, False, 'cpu'):
            raise ConfigError(f"fast_path must be True, False or 'cpu', got {fast_path!r}")
        _check_strip_pixels(strip_pixels)
        self.fast_path = fast_path
        self.strip_pixels = strip_pixels

    def convert_for_device(self, device: Union[str, torch.device, None] = None) -> None:
        """Give this network's modules the form its setting asks for on ``device`` (default:
        where its parameters are); see :func:`convert_for_device`."""
        if device is None:
            param = next(self.parameters(), None)
            on_cpu = param is None or param.device.type == 'cpu'
        else:
            on_cpu = torch.device(device).type == 'cpu'
        fast = on_cpu if self.fast_path == 'cpu' else bool(self.fast_path)
        _swap_forms(self, fast, self.strip_pixels)

    def uses_fast_form(self) -> bool:
        """Whether any module of the network runs its fast form now."""
        fast = {f for _, f in FAST_FORMS}
        return any(type(m) in fast for m in self.modules())

    def extra_repr(self) -> str:
        form = 'fast' if self.uses_fast_form() else 'exact'
        return f'fast_path={self.fast_path!r}, form={form}'


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` with channels-last memory (a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, H, W, C)``, a view (contiguous when ``x`` is channels-last)."""
    return x.permute(0, 2, 3, 1)


def from_nhwc(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, H*W, C)`` or ``(B, H, W, C)`` contiguous -> channels-last ``(B, C, H, W)`` view."""
    return x.view(x.shape[0], height, width, x.shape[-1]).permute(0, 3, 1, 2)


def row_strips(height: int, width: int, strip_pixels: int,
               grad: bool) -> List[Tuple[int, int]]:
    """Row ranges ``[(r0, r1), ...]`` covering ``height`` rows, each at most ``strip_pixels``
    pixels (at least one row); one range for the whole map when autograd records."""
    if grad or height * width <= strip_pixels:
        return [(0, height)]
    rows = max(1, strip_pixels // width)
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def conv_rows(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor],
              r0: int, r1: int) -> torch.Tensor:
    """Rows ``r0:r1`` of ``fn(x)`` for a map-to-map ``fn`` whose receptive field is 3 rows
    (pointwise ops and one zero-padded 3x3 conv), computed from rows ``r0-1 : r1+1`` only."""
    height = x.shape[2]
    if r0 == 0 and r1 == height:
        return fn(x)
    a, b = max(r0 - 1, 0), min(r1 + 1, height)
    return fn(x[:, :, a:b])[:, :, r0 - a:r1 - a]


def add_product(residual: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``residual + a @ b`` as one GEMM (``addmm`` / ``baddbmm``). Under autocast the product is
    added outside the GEMM instead, so that the residual stream keeps its own precision (fp32)
    as it does on the exact path."""
    if torch.is_autocast_enabled(residual.device.type):
        return residual + a @ b
    return torch.baddbmm(residual, a, b) if residual.dim() == 3 else torch.addmm(residual, a, b)
