from .io import atomic_torch_save, atomic_write_bytes

__all__ = ['atomic_torch_save', 'atomic_write_bytes']
