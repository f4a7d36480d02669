from .errors import ConfigError, InputError, UserError
from .io import CheckpointError, atomic_torch_save, atomic_write_bytes, load_weights_file

__all__ = ['CheckpointError', 'ConfigError', 'InputError', 'UserError', 'atomic_torch_save',
           'atomic_write_bytes', 'load_weights_file']
